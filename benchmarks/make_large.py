"""Write a seeded synthetic multi-label problem for evalkit's cost targets (issue 11).

    python benchmarks/make_large.py [OUT_DIR] [--samples 16000] [--features 500] [--labels 1000]
                                    [--density 0.02] [--seed 0]

Default: 16,000 samples x 500 sparse bag-of-words features (about 2 % non-zero, term counts
1 + Poisson(0.5)) x 1,000 labels with a long-tailed (Zipf, exponent 1.1) label frequency: the most
frequent label is on ~25 % of the samples, the rarest on 8 samples (0.05 %).

Labels come from a seeded score ``X W + relu(X A) V + noise``: a sparse linear part (each label
listens to ~12 words) plus a small non-linear part (32 hidden units), each label cut at the quantile
that gives its target frequency. Both a linear model and an MLP can learn it; neither is perfect.

Writes into OUT_DIR (default ``benchmarks/data``):

* ``large.arff`` + ``large.xml``: sparse ARFF (``{index value, ...}`` rows), MULAN label file;
* ``large.npz``: CSR features in the ``scipy.sparse.save_npz`` layout (``data``, ``indices``,
  ``indptr``, ``shape``, ``format``) plus ``Y`` (N, C) uint8 and ``labels`` (C,) names.

``evalkit run --dataset OUT_DIR/large.npz`` (or ``large.arff``) then does the documented stratified
70/30 train/test split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def make(n: int = 16_000, f: int = 500, c: int = 1_000, density: float = 0.02, seed: int = 0):
    """``(X csr float32 (n, f), Y uint8 (n, c))``, seeded."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    # word popularity is long-tailed too: a few frequent words, many rare ones
    word_p = 1.0 / np.arange(1, f + 1) ** 0.6
    word_p = rng.permutation(word_p / word_p.sum())
    nnz_row = np.maximum(1, rng.poisson(density * f, size=n))
    rows = np.repeat(np.arange(n), nnz_row)
    cols = np.concatenate([rng.choice(f, size=k, replace=False, p=word_p) for k in nnz_row])
    vals = (1 + rng.poisson(0.5, size=cols.size)).astype(np.float32)
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, f), dtype=np.float32)
    X.sum_duplicates()
    X.sort_indices()

    # label scores: sparse linear part + a small non-linear part + noise
    W = sp.random(f, c, density=12 / f, random_state=seed, data_rvs=lambda k: rng.normal(1.0, 0.5, k)).toarray()
    A = rng.normal(0, 1, (f, 32)) * (rng.random((f, 32)) < 0.05)
    V = rng.normal(0, 1, (32, c)) * (rng.random((32, c)) < 0.2)
    Xl = X.copy()
    Xl.data = np.log1p(Xl.data)
    S = np.asarray(Xl @ W) + np.maximum(np.asarray(Xl @ A), 0) @ V + rng.normal(0, 0.5, (n, c))
    # long-tailed frequencies: Zipf over labels, top ~25 %, at least 8 positives each
    freq = 0.25 / np.arange(1, c + 1) ** 1.1
    freq = np.maximum(freq, 8 / n)
    Y = np.zeros((n, c), dtype=np.uint8)
    for j in range(c):
        k = max(8, int(round(freq[j] * n)))
        top = np.argpartition(-S[:, j], k - 1)[:k]
        Y[top, j] = 1
    return X, Y


def write_arff(path: Path, X, Y, label_names: list[str]) -> None:
    """Sparse ARFF: features f0.. (numeric) first, then the labels as nominal {0,1}."""
    n, f = X.shape
    lines = ["@relation 'large'", ""]
    lines += [f"@attribute f{j} numeric" for j in range(f)]
    lines += [f"@attribute {name} {{0,1}}" for name in label_names]
    lines += ["", "@data"]
    Yc = Y.tocsr() if hasattr(Y, "tocsr") else None
    for i in range(n):
        a, b = X.indptr[i], X.indptr[i + 1]
        parts = [f"{j} {v:g}" for j, v in zip(X.indices[a:b], X.data[a:b])]
        ys = np.flatnonzero(Y[i]) if Yc is None else Yc.indices[Yc.indptr[i]:Yc.indptr[i + 1]]
        parts += [f"{f + j} 1" for j in ys]
        lines.append("{" + ",".join(parts) + "}")
    path.write_text("\n".join(lines) + "\n")


def write_xml(path: Path, label_names: list[str]) -> None:
    body = "\n".join(f'  <label name="{name}"></label>' for name in label_names)
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n'
                    '<labels xmlns="http://mulan.sourceforge.net/labels">\n' + body + "\n</labels>\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(Path(__file__).parent / "data"))
    ap.add_argument("--samples", type=int, default=16_000)
    ap.add_argument("--features", type=int, default=500)
    ap.add_argument("--labels", type=int, default=1_000)
    ap.add_argument("--density", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="large")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    X, Y = make(args.samples, args.features, args.labels, args.density, args.seed)
    names = [f"L{j:04d}" for j in range(Y.shape[1])]
    np.savez_compressed(out / f"{args.name}.npz", data=X.data, indices=X.indices, indptr=X.indptr,
                        shape=np.array(X.shape), format=np.array("csr"), Y=Y, labels=np.array(names))
    write_arff(out / f"{args.name}.arff", X, Y, names)
    write_xml(out / f"{args.name}.xml", names)
    counts = Y.sum(axis=0)
    print(f"{out}/{args.name}.{{npz,arff,xml}}: {X.shape[0]} x {X.shape[1]} features "
          f"({X.nnz / (X.shape[0] * X.shape[1]):.2%} non-zero) x {Y.shape[1]} labels "
          f"(frequency {counts.max()} .. {counts.min()}, cardinality {Y.sum(1).mean():.2f}) "
          f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
