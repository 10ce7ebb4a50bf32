"""The in-memory dataset container shared by every stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from evalkit.data.sparse import as_csr, is_lazy, is_sparse
from evalkit.errors import InputError


@dataclass(frozen=True, eq=False)
class Dataset:
    """A multi-label dataset held in memory.

    Attributes:
        name: short name (``"yeast"``, or the file stem).
        X: features, shape ``(N, F)``, dtype float32 (images: ``(N, 3, H, W)``); sparse data (sparse
            ARFF, CSR ``.npz``) stays a ``scipy.sparse.csr_matrix`` float32 ``(N, F)``, so memory grows
            with the non-zeros (:mod:`evalkit.data.sparse`).
        Y: targets, shape ``(N, C)``, dtype uint8, values in {0, 1} (multi-hot).
        feature_names: ``F`` names (empty for image tensors).
        label_names: ``C`` label names, in column order of ``Y``.
        source: where it came from (``"builtin:yeast"`` or a file path).
        meta: reader details, e.g. ``format``, ``notes`` (one-line strings the CLI prints: ID-like
            attributes dropped, stale MEKA counts ignored), ``dropped`` (feature columns left out).

    Raises:
        InputError: (exit code 2) on inconsistent shapes, non-binary targets, NaN/inf features or no
            samples.
    """

    name: str
    X: np.ndarray
    Y: np.ndarray
    feature_names: list[str]
    label_names: list[str]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", safe_text(self.name))  # logged, plotted, printed: never raw bytes
        object.__setattr__(self, "source", safe_text(self.source))
        X, Y = self.X, self.Y
        where = self.source or self.name
        if Y.ndim != 2:
            raise InputError(f"{where}: targets must have shape (N, C), got {Y.shape}")
        if X.shape[0] != Y.shape[0]:
            raise InputError(f"{where}: {X.shape[0]} feature rows but {Y.shape[0]} target rows")
        if X.shape[0] == 0:
            raise InputError(f"{where}: dataset has zero samples")
        if len(self.label_names) != Y.shape[1]:
            raise InputError(f"{where}: {len(self.label_names)} label names for {Y.shape[1]} target columns")
        if not np.isin(Y, (0, 1)).all():
            raise InputError(f"{where}: targets must be 0 or 1")
        if is_lazy(X):  # an image table's images, on disk (evalkit.images.lazy): streamed, never held
            pass
        elif is_sparse(X):
            if not np.isfinite(X.data).all():
                raise InputError(f"{where}: features contain NaN or inf")
            object.__setattr__(self, "X", as_csr(X))
        else:
            if X.dtype.kind == "f" and not np.isfinite(X).all():
                raise InputError(f"{where}: features contain NaN or inf")
            object.__setattr__(self, "X", np.ascontiguousarray(X, dtype=np.float32))
        object.__setattr__(self, "Y", np.ascontiguousarray(Y, dtype=np.uint8))

    @property
    def n_samples(self) -> int:
        """``N``, the number of rows."""
        return int(self.Y.shape[0])

    @property
    def n_labels(self) -> int:
        """``C``, the number of label columns of ``Y``."""
        return int(self.Y.shape[1])

    @property
    def n_features(self) -> int:
        """``F``, features per sample (``3 * H * W`` for ``(N, 3, H, W)`` images)."""
        return int(np.prod(self.X.shape[1:]))

    @property
    def label_cardinality(self) -> float:
        """Mean number of positive labels per sample (Tsoumakas & Katakis, 2007)."""
        return float(self.Y.sum(axis=1).mean())

    @property
    def label_density(self) -> float:
        """Label cardinality divided by the number of labels, in [0, 1]."""
        return self.label_cardinality / self.n_labels

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex, first 16 chars) over the full content: shapes, names, X and Y bytes.

        Unlike MLflow's dataset digest, which samples the first 10,000 rows, every row counts.
        """
        return content_digest(self.X, self.Y, self.feature_names, self.label_names)

    def subset(self, index: np.ndarray, name: str | None = None) -> "Dataset":
        """Rows ``index`` as a new Dataset (same names)."""
        return Dataset(
            name=name or self.name,
            X=self.X[index],
            Y=self.Y[index],
            feature_names=self.feature_names,
            label_names=self.label_names,
            source=self.source,
            meta=dict(self.meta),
        )

    def with_features(self, X: np.ndarray) -> "Dataset":
        """The same dataset with features ``X`` (same ``N``; e.g. standardised), stored as float32."""
        return Dataset(self.name, X, self.Y, self.feature_names, self.label_names, self.source, dict(self.meta))


def safe_text(text: str | bytes) -> str:
    """``text`` as printable, encodable text: a file name's undecodable bytes (``b"\\xff"``, which Python
    holds as the surrogate ``"\\udcff"``) and control characters become U+FFFD; other text is unchanged.
    Dataset names and sources pass through here, so MLflow, matplotlib and the console get valid UTF-8."""
    from evalkit.tracking.redact import encodable  # light: imports neither mlflow nor numpy

    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else encodable(text)
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def content_digest(*parts) -> str:
    """Hash arrays (dtype, shape, bytes) and lists of names into a short hex digest."""
    h = hashlib.sha256()
    for part in parts:
        if is_lazy(part):  # images on disk: their shape and paths
            part = repr(part.digest_parts())
            h.update(part.encode())
        elif is_sparse(part):  # CSR: shape + data / indices / indptr (never densified)
            part = as_csr(part)
            h.update(f"csr{part.shape}".encode())
            for a in (part.data, part.indices.astype(np.int64), part.indptr.astype(np.int64)):
                h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
        elif isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
        else:
            h.update(repr(list(part)).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Splits:
    """train / validation / test splits of one experiment. Validation always comes from train."""

    train: Dataset
    val: Dataset
    test: Dataset
    digest: str  # digest of the full data (train + test before the validation carve-out)
    name: str

    @property
    def label_names(self) -> list[str]:
        """The ``C`` label names (train's; validation and test have the same)."""
        return self.train.label_names
