"""The test scores a run keeps (``scores.parquet``), so two runs on the same rows can be compared row
by row later without their models (``evalkit compare RUN_A RUN_B``, ``max_drop = [".. =significant"]``).

Layout (Parquet, zstd-compressed): one row per test row, columns ``row_id`` (int64: the row's
position in the evaluated split / file, 0..N-1), then ``target:<label>`` (uint8 in {0, 1}) and
``prob:<label>`` (the probabilities as computed: float64 for ``run`` and ``evaluate --model``,
the file's dtype for ``evaluate --predictions``), labels in column order. It is therefore also a
predictions file ``evalkit evaluate --predictions scores.parquet`` reads (:mod:`evalkit.metrics.io`).

The file's key-value metadata ``evalkit.scores`` (JSON) holds ``version`` (1), ``labels``,
``thresholds`` (``(C,)`` cuts in (0, 1), or ``null`` for top-k, then ``k``), ``threshold``
(the strategy text), ``digest`` (the evaluated rows' digest: the run's ``evaluation`` input and
report ``dataset.digest`` of ``evaluate``) and ``n_rows``.

Size: about N x C x (1 + 8) bytes before compression (measured: 126 kB for yeast's 917 x 14 test rows, float64).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.errors import InputError
from evalkit.metrics.io import PREFIX_PROB, PREFIX_TARGET

SCORES_FILE = "scores.parquet"
META_KEY = b"evalkit.scores"
VERSION = 1


@dataclass(frozen=True)
class ScoreSet:
    """The kept scores of one run.

    Attributes:
        row_ids: int64 ``(N,)``; targets: uint8 ``(N, C)`` in {0, 1}; probabilities: float ``(N, C)``
        in [0, 1]; labels: ``C`` names; thresholds: float64 ``(C,)`` or ``None`` (top-k, ``k``);
        threshold: the strategy text; digest: the evaluated rows' digest (16 hex) or ``None``.
    """

    row_ids: np.ndarray
    targets: np.ndarray
    probabilities: np.ndarray
    labels: list[str]
    thresholds: np.ndarray | None
    k: int | None
    threshold: str
    digest: str | None

    @property
    def n_rows(self) -> int:
        return int(self.targets.shape[0])


class ScoresWriter:
    """Writes ``scores.parquet`` batch by batch (a predictions file larger than memory is never held).

    ``add(targets, scores, labels, kind)`` appends rows (logits become probabilities here, by
    :func:`evalkit.scores.sigmoid`); ``close(digest, threshold)`` writes the metadata and closes.
    """

    def __init__(self, path: str | Path):
        self.path, self.rows, self._writer, self._labels = Path(path), 0, None, []

    def add(self, targets, scores, labels, kind: str = "probabilities") -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from evalkit.scores import sigmoid

        Y, P = np.asarray(targets), sigmoid(scores) if kind == "logits" else np.asarray(scores)
        if self._writer is None:
            self._labels = [str(x) for x in labels]
            fields = [pa.field("row_id", pa.int64())]
            fields += [pa.field(f"{PREFIX_TARGET}{n}", pa.uint8()) for n in self._labels]
            fields += [pa.field(f"{PREFIX_PROB}{n}", pa.from_numpy_dtype(P.dtype)) for n in self._labels]
            self._schema = pa.schema(fields)
            self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")
        cols = [pa.array(np.arange(self.rows, self.rows + len(Y), dtype=np.int64))]
        cols += [pa.array(np.ascontiguousarray(Y[:, j], dtype=np.uint8)) for j in range(Y.shape[1])]
        cols += [pa.array(np.ascontiguousarray(P[:, j]), type=self._schema.field(1 + Y.shape[1] + j).type)
                 for j in range(P.shape[1])]
        self._writer.write_table(pa.Table.from_arrays(cols, schema=self._schema))
        self.rows += len(Y)

    def close(self, digest: str | None, threshold: dict | None = None) -> Path | None:
        """Write the metadata and close; the file's path, or ``None`` when no row was added.

        Args:
            threshold: the report's ``threshold`` block (``strategy``, ``values``: one per label or
                nulls for top-k, ``k``; :meth:`evalkit.thresholds.Thresholds.to_dict`).
        """
        if self._writer is None:
            return None
        block = threshold or {}
        values = block.get("values")
        cuts = None if not values or any(v is None for v in values) else [float(v) for v in values]
        meta = {"version": VERSION, "labels": self._labels, "threshold": str(block.get("strategy", "")),
                "thresholds": cuts, "k": block.get("k"), "digest": digest, "n_rows": self.rows}
        self._writer.add_key_value_metadata({META_KEY: json.dumps(meta)})
        self._writer.close()
        return self.path


def write_scores(path: str | Path, targets, probabilities, labels, thresholds, digest: str | None) -> Path:
    """Write a whole ``(N, C)`` score set at once (:class:`ScoresWriter`; ``thresholds``: a
    :class:`~evalkit.thresholds.Thresholds`)."""
    w = ScoresWriter(path)
    w.add(targets, probabilities, labels)
    return w.close(digest, thresholds.to_dict())


def declared_digest(path: str | Path, n_rows: int, labels: list[str]) -> str | None:
    """The rows' digest a ``scores.parquet`` written by evalkit declares in its metadata, when the
    file still holds those rows (``n_rows`` and ``labels`` as evaluated); ``None`` for any other file.

    ``evaluate --predictions scores.parquet`` records it, so a run's kept scores evaluated again
    compare with that run (whose digest is of its dataset's test split, not of a targets file)."""
    if Path(path).suffix.lower() not in (".parquet", ".pq"):
        return None
    try:
        import pyarrow.parquet as pq

        meta = _metadata(pq.read_metadata(path))
    except Exception:  # unreadable: the predictions reader has said so already
        return None
    ok = (isinstance(meta, dict) and meta.get("version") == VERSION and meta.get("n_rows") == n_rows
          and [str(x) for x in meta.get("labels") or []] == list(labels) and isinstance(meta.get("digest"), str))
    return meta["digest"] if ok else None


def _metadata(md):
    """The ``evalkit.scores`` JSON of a Parquet file's metadata (file or schema key-value), or ``None``."""
    return json.loads((md.schema.to_arrow_schema().metadata or {}).get(META_KEY) or (md.metadata or {}).get(META_KEY)
                      or b"null")


def read_scores(path: str | Path, where: str) -> ScoreSet:
    """Read a ``scores.parquet`` written by :class:`ScoresWriter`.

    Args:
        where: how errors name the file (e.g. ``run 1a2b3c4d``).
    Raises:
        InputError: not a Parquet file, or no ``evalkit.scores`` metadata / columns as written.
    """
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        meta = _metadata(pf.metadata)
        table = pf.read()
    except Exception as e:  # pyarrow.ArrowInvalid, OSError, ValueError
        raise InputError(f"{where}: {SCORES_FILE} is unreadable ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise InputError(f"{where}: {SCORES_FILE} has no evalkit.scores metadata; expected a file written by evalkit")
    labels = [str(x) for x in meta["labels"]]
    try:
        Y = np.stack([table.column(f"{PREFIX_TARGET}{n}").to_numpy() for n in labels], axis=1).astype(np.uint8)
        P = np.stack([table.column(f"{PREFIX_PROB}{n}").to_numpy() for n in labels], axis=1)
        ids = table.column("row_id").to_numpy().astype(np.int64)
    except KeyError as e:
        raise InputError(f"{where}: {SCORES_FILE} lacks column {e}; expected row_id, target:<label>, prob:<label>") from None
    cuts = meta.get("thresholds")
    return ScoreSet(ids, Y.reshape(len(ids), len(labels)), P.reshape(len(ids), len(labels)), labels,
                    None if cuts is None else np.asarray(cuts, dtype=np.float64), meta.get("k"),
                    str(meta.get("threshold", "")), meta.get("digest"))
