"""Seeded, label-stratified splits and train-only standardisation."""

from __future__ import annotations

import numpy as np

from evalkit.data.core import Dataset, Splits, content_digest
from evalkit.data.sparse import as_csr, is_sparse
from evalkit.errors import InputError


def stratified_split(Y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` of a seeded iterative-stratified split of multi-hot ``Y`` (N, C).

    Uses iterative stratification (Sechidis et al., ECML 2011; Szymański & Kajdanowicz 2017) from
    the ``iterative-stratification`` package, which keeps rare labels represented in both parts.

    Raises:
        InputError: ``test_size`` outside (0, 1) or too few samples for both parts.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    if not 0.0 < test_size < 1.0:
        raise InputError(f"split size must be in (0, 1), got {test_size}")
    n = Y.shape[0]
    if n < 2 or round(n * test_size) < 1 or round(n * (1 - test_size)) < 1:
        raise InputError(f"--test-size / --val-size {test_size:g}: cannot split {n} samples into two non-empty parts; "
                         f"expected a fraction leaving at least one sample on each side")
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    keep, held = next(splitter.split(np.zeros((n, 1)), Y))
    return np.sort(keep), np.sort(held)


def make_splits(
    train: Dataset,
    test: Dataset | None = None,
    *,
    val_size: float = 0.2,
    test_size: float = 0.3,
    seed: int = 0,
) -> Splits:
    """Build train / val / test splits.

    ``test`` given: it is the test split. Otherwise a seeded stratified split of ``train`` (``test_size``).
    The validation split (``val_size`` of train) is always carved out of train only, so tuning on it
    never sees test data.

    Raises:
        InputError: (exit code 2) fewer than 2 labels, label names of train and test differ (the
            message lists the names only in one of them), or a split would be empty.
    """
    if train.Y.shape[1] < 2:  # the multi-label stratifier (and multi-label metrics) need C >= 2
        raise InputError(f"{train.source or train.name}: {train.Y.shape[1]} label column(s) "
                         f"{list(train.label_names)}; expected at least 2 labels for multi-label splits and metrics")
    if test is not None and list(test.label_names) != list(train.label_names):
        raise InputError(f"{test.source or test.name}: test labels differ from train labels: "
                         f"{_label_difference(list(train.label_names), list(test.label_names))}")
    if test is not None and train.X.ndim == 2 and list(test.feature_names) != list(train.feature_names):
        # a model reads features by position: another set (or order) of columns would be misread
        raise InputError(f"{test.source or test.name}: test feature columns differ from train's: "
                         f"{_label_difference(list(train.feature_names), list(test.feature_names), 'features')}; "
                         "expected the training file's feature columns, in its order")
    full_digest = train.meta.get("full_digest")
    if test is None:
        keep, held = stratified_split(train.Y, test_size, seed)
        full_digest = full_digest or train.digest
        train, test = train.subset(keep), train.subset(held)
    else:
        full_digest = full_digest or content_digest(train.X, train.Y, test.X, test.Y, train.label_names)
    if "val_rows" in train.meta:  # a given validation split (MedMNIST)
        held = np.asarray(train.meta["val_rows"])
        keep = np.setdiff1d(np.arange(train.n_samples), held)
    else:
        keep, held = stratified_split(train.Y, val_size, seed)
    return Splits(
        train=train.subset(keep),
        val=train.subset(held),
        test=test,
        digest=full_digest,
        name=train.name,
    )


def _label_difference(train: list[str], test: list[str], kind: str = "labels") -> str:
    only_test = [n for n in test if n not in set(train)]
    only_train = [n for n in train if n not in set(test)]
    if not only_test and not only_train:
        return f"same {len(train)} names in another order (train {train[:5]}, test {test[:5]})"
    parts = [f"only in test: {only_test[:5]}" if only_test else "", f"only in train: {only_train[:5]}" if only_train else ""]
    return "; ".join(p for p in parts if p) + f" (train has {len(train)}, test {len(test)} {kind})"


def standardization_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std, ``(F,)`` float64 each, of the flattened features of ``X`` ``(N, ...)`` (the
    train split); a constant feature gets std 1. ``preprocess.json`` records them.

    Sparse (CSR) ``X``: the mean is recorded as 0 (scale only, no centring, so the data stays sparse:
    ``zscore`` divides each feature by its std); the std is the exact column std."""
    if is_sparse(X):
        n = X.shape[0]
        m1 = np.asarray(X.sum(axis=0), dtype=np.float64).ravel() / n
        sq = X.copy()
        sq.data = sq.data.astype(np.float64) ** 2
        m2 = np.asarray(sq.sum(axis=0), dtype=np.float64).ravel() / n
        std = np.sqrt(np.maximum(m2 - m1 ** 2, 0.0))
        std[std == 0] = 1.0
        return np.zeros(X.shape[1], dtype=np.float64), std
    Xf = X.reshape(X.shape[0], -1)
    mean = Xf.mean(axis=0, dtype=np.float64)
    std = Xf.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    return mean, std


def zscore(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` over the flattened features, float32, in ``X``'s own shape (the one
    standardisation of evalkit: training and ``evaluate --model`` both use it). CSR ``X`` with a zero
    ``mean`` (sparse statistics) stays CSR: each column is divided by its std."""
    if is_sparse(X):
        if np.any(mean != 0):
            X = X.toarray()
        else:
            import scipy.sparse as sp

            return as_csr(as_csr(X) @ sp.diags((1.0 / std).astype(np.float32)))
    Z = (X.reshape(X.shape[0], -1) - mean) / std
    return Z.astype(np.float32).reshape(X.shape)


def standardize(splits: Splits, stats: tuple[np.ndarray, np.ndarray] | None = None) -> Splits:
    """Z-score features with mean / std from the train split only (constant features: std 1).

    Features of every split are reshaped to ``(N, F)`` for the statistics and back to their own shape
    (``(N, 3, H, W)`` images stay images); the result is float32. ``stats``: precomputed
    :func:`standardization_stats` of the train split.
    """
    mean, std = stats if stats is not None else standardization_stats(splits.train.X)

    def apply(ds: Dataset) -> Dataset:
        return ds.with_features(zscore(ds.X, mean, std))

    return Splits(apply(splits.train), apply(splits.val), apply(splits.test), splits.digest, splits.name)
