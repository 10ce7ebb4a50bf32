"""Benchmark evalkit's metric engine against scikit-learn and torchmetrics on the same report.

Usage::

    python benchmarks/bench_metrics.py                       # N=200,000, C=100, float32
    python benchmarks/bench_metrics.py --skip-slow           # skip sklearn LRAP / ranking loss, torchmetrics exact AP...
    python benchmarks/bench_metrics.py --stream-parquet --n 1000000 --c 500

Every task runs in its own subprocess (same seeded data, regenerated there), so its peak RSS is
measured cleanly: the kernel's high-water mark (VmHWM) is reset after the data is built
(``/proc/self/clear_refs``) and the table shows the peak *above* the RSS with the inputs loaded,
next to the size of the input arrays (float32 probabilities + uint8 targets). Times are the best of
``--repeat`` runs (wall clock). The parent asserts that all libraries agree on every shared number.

evalkit tasks are always timed best of 3 (at least).

``--stream-parquet`` writes a Parquet file (columns ``target:<label>``, ``prob:<label>``, row groups
of ``--row-group`` rows), then evaluates it in a fresh process with
:func:`evalkit.metrics.io.iter_prediction_batches` and ``threshold_free="streaming"``, reporting
the process's absolute peak RSS (goal: < 1.5 GB for N=1,000,000, C=500).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

BETA = 2.0
THRESHOLD = 0.5


# ---------------------------------------------------------------------------------------- data


def make_data(n: int, c: int, seed: int, start: int = 0, rows: int | None = None):
    """Seeded multi-label data: targets uint8 (n, c) with per-label prevalence 0.5%..50%,
    probabilities float32 = sigmoid(logits) with label-dependent separation. Rows
    ``start .. start+rows`` can be generated alone (identical to slicing the full data)."""
    rows = n - start if rows is None else rows
    prev = np.clip(np.random.default_rng(seed).beta(1.0, 6.0, size=c), 0.005, 0.5).astype(np.float32)
    sep = np.random.default_rng(seed + 1).uniform(0.5, 3.0, size=c).astype(np.float32)
    Y = np.empty((rows, c), dtype=np.uint8)
    P = np.empty((rows, c), dtype=np.float32)
    block = 16384
    for b0 in range(start - start % block, start + rows, block):  # fixed blocks => slice-invariant
        rng = np.random.default_rng([seed, b0])
        u = rng.random((block, c), dtype=np.float32)
        z = rng.standard_normal((block, c), dtype=np.float32)
        lo, hi = max(b0, start), min(b0 + block, start + rows)
        if lo >= hi:
            continue
        sl = slice(lo - b0, hi - b0)
        y = u[sl] < prev
        logit = z[sl] * 1.5 + np.where(y, sep, -sep) - 1.0
        Y[lo - start:hi - start] = y
        P[lo - start:hi - start] = 1.0 / (1.0 + np.exp(-logit))
    return Y, P


# ------------------------------------------------------------------------------------ memory


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------- tasks


def task_evalkit(Y, P, mode):
    from evalkit.metrics import compute_metrics
    from evalkit.report import metrics_block

    r = compute_metrics(Y, P, scores_kind="probabilities", threshold=THRESHOLD, beta=BETA, threshold_free=mode)
    return metrics_block(r)["summary"]


def task_sklearn_thresholded(Y, P, _):
    from sklearn.metrics import accuracy_score, classification_report, fbeta_score, hamming_loss

    pred = (P >= THRESHOLD).astype(np.uint8)
    rep = classification_report(Y, pred, output_dict=True, zero_division=0)
    out = {}
    for avg in ("micro", "macro", "weighted", "samples"):
        d = rep[f"{avg} avg"]
        out[avg] = {"precision": d["precision"], "recall": d["recall"], "f1": d["f1-score"],
                    "f2": fbeta_score(Y, pred, beta=BETA, average=avg, zero_division=0)}
    fbeta_score(Y, pred, beta=BETA, average=None, zero_division=0)
    out["subset_accuracy"] = accuracy_score(Y, pred)
    out["hamming_loss"] = hamming_loss(Y, pred)
    return out


def task_sklearn_threshold_free(Y, P, skip_slow):
    from sklearn.metrics import (average_precision_score, coverage_error, label_ranking_average_precision_score,
                                 label_ranking_loss, roc_auc_score)

    calls = {
        "mean_average_precision": lambda: average_precision_score(Y, P, average="macro"),
        "macro_auroc": lambda: roc_auc_score(Y, P, average="macro"),
        "micro_average_precision": lambda: average_precision_score(Y, P, average="micro"),
        "micro_auroc": lambda: roc_auc_score(Y, P, average="micro"),
        "coverage_error": lambda: coverage_error(Y, P),
    }
    if not skip_slow:
        calls["label_ranking_average_precision"] = lambda: label_ranking_average_precision_score(Y, P)
        calls["label_ranking_loss"] = lambda: label_ranking_loss(Y, P)
    out, times = {}, {}
    for k, f in calls.items():
        t0 = time.perf_counter()
        out[k] = f()
        times[k] = time.perf_counter() - t0
    out["_seconds"] = times
    return out


def _tm_thresholded(C):
    from torchmetrics.classification import (MultilabelExactMatch, MultilabelF1Score, MultilabelFBetaScore,
                                             MultilabelHammingDistance, MultilabelPrecision, MultilabelRecall)

    m = {}
    for avg in ("micro", "macro", "weighted"):
        m[f"{avg}_precision"] = MultilabelPrecision(C, threshold=THRESHOLD, average=avg)
        m[f"{avg}_recall"] = MultilabelRecall(C, threshold=THRESHOLD, average=avg)
        m[f"{avg}_f1"] = MultilabelF1Score(C, threshold=THRESHOLD, average=avg)
        m[f"{avg}_f2"] = MultilabelFBetaScore(BETA, C, threshold=THRESHOLD, average=avg)
    m["subset_accuracy"] = MultilabelExactMatch(C, threshold=THRESHOLD)
    m["hamming_loss"] = MultilabelHammingDistance(C, threshold=THRESHOLD, average="micro")
    return m


def _tm_unpack(vals):
    out = {"micro": {}, "macro": {}, "weighted": {}}
    for k, v in vals.items():
        if "_" in k and k.split("_", 1)[0] in out:
            a, name = k.split("_", 1)
            out[a][name] = float(v)
        else:
            out[k] = float(v)
    return out


def task_tm_objects(Y, P, _):
    import torch

    p, t = torch.from_numpy(P), torch.from_numpy(Y).long()
    metrics = _tm_thresholded(P.shape[1])
    vals = {}
    for k, m in metrics.items():
        m.update(p, t)
        vals[k] = m.compute()
    return _tm_unpack(vals)


def task_tm_collection(Y, P, _):
    import torch
    from torchmetrics import MetricCollection

    p, t = torch.from_numpy(P), torch.from_numpy(Y).long()
    col = MetricCollection(_tm_thresholded(P.shape[1]))
    col.update(p, t)
    return _tm_unpack(col.compute())


def task_tm_threshold_free(Y, P, _):
    import torch
    from torchmetrics.classification import (MultilabelAUROC, MultilabelAveragePrecision, MultilabelCoverageError,
                                             MultilabelRankingAveragePrecision, MultilabelRankingLoss)

    p, t = torch.from_numpy(P), torch.from_numpy(Y).long()
    C = P.shape[1]
    ms = {
        "mean_average_precision": MultilabelAveragePrecision(C, average="macro", thresholds=None),
        "macro_auroc": MultilabelAUROC(C, average="macro", thresholds=None),
        "micro_average_precision": MultilabelAveragePrecision(C, average="micro", thresholds=None),
        "micro_auroc": MultilabelAUROC(C, average="micro", thresholds=None),
        "label_ranking_average_precision": MultilabelRankingAveragePrecision(C),
        "coverage_error": MultilabelCoverageError(C),
        "label_ranking_loss": MultilabelRankingLoss(C),
    }
    out = {}
    for k, m in ms.items():
        m.update(p, t)
        out[k] = float(m.compute())
    return out


TASKS = {
    "evalkit thresholded": (task_evalkit, "none"),
    "evalkit full (exact)": (task_evalkit, "exact"),
    "evalkit full (streaming)": (task_evalkit, "streaming"),
    "sklearn thresholded": (task_sklearn_thresholded, None),
    "sklearn threshold-free": (task_sklearn_threshold_free, "skip_slow"),
    "torchmetrics objects": (task_tm_objects, None),
    "torchmetrics MetricCollection": (task_tm_collection, None),
    "torchmetrics threshold-free": (task_tm_threshold_free, None),
}


def run_task(name: str, n: int, c: int, seed: int, repeat: int, skip_slow: bool) -> dict:
    warnings.filterwarnings("ignore")
    fn, arg = TASKS[name]
    if arg == "skip_slow":
        arg = skip_slow
    Y, P = make_data(n, c, seed)
    import torch  # noqa: F401  (import cost and its memory are not part of the measurement)
    import sklearn.metrics  # noqa: F401
    import torchmetrics  # noqa: F401

    import evalkit.metrics  # noqa: F401

    base = _rss_kb("VmRSS")
    exact_peak = _reset_peak()
    times, result, peak = [], None, None
    if name.startswith("evalkit"):
        repeat = max(repeat, 3)  # cheap: always best of 3
    for i in range(repeat):
        t0 = time.perf_counter()
        result = fn(Y, P, arg)
        times.append(time.perf_counter() - t0)
        if i == 0:
            peak = _rss_kb("VmHWM")
    return {"name": name, "seconds": min(times), "peak_extra_mb": (peak - base) / 1024 if exact_peak else None,
            "peak_rss_mb": peak / 1024, "result": result}


def _spawn(args: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"task failed: {' '.join(args)}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------- agreement


def check_agreement(res: dict) -> list[str]:
    ev = res["evalkit full (exact)"]["result"]
    checks = []

    def close(a, b, tol, what):
        assert abs(a - b) <= tol, f"disagreement on {what}: {a!r} vs {b!r}"
        checks.append(what)

    if "sklearn thresholded" in res:
        sk = res["sklearn thresholded"]["result"]
        for avg in ("micro", "macro", "weighted", "samples"):
            for k in ("precision", "recall", "f1", "f2"):
                close(ev[avg][k], sk[avg][k], 1e-9, f"sklearn {avg} {k}")
        close(ev["subset_accuracy"], sk["subset_accuracy"], 1e-12, "sklearn subset_accuracy")
        close(ev["hamming_loss"], sk["hamming_loss"], 1e-12, "sklearn hamming_loss")
    if "sklearn threshold-free" in res:
        for k, v in res["sklearn threshold-free"]["result"].items():
            if not k.startswith("_"):
                close(ev[k], v, 1e-6, f"sklearn {k}")
    if "evalkit thresholded" in res:
        th = res["evalkit thresholded"]["result"]
        for avg in ("micro", "macro", "weighted", "samples"):
            for k in ("precision", "recall", "f1", "f2"):
                close(th[avg][k], ev[avg][k], 0.0, f"evalkit none==exact {avg} {k}")
    for name in ("torchmetrics objects", "torchmetrics MetricCollection"):
        if name in res:
            tm = res[name]["result"]
            for avg in ("micro", "macro", "weighted"):
                for k in ("precision", "recall", "f1", "f2"):
                    close(ev[avg][k], tm[avg][k], 1e-5, f"{name} {avg} {k}")
            close(ev["subset_accuracy"], tm["subset_accuracy"], 1e-6, f"{name} subset_accuracy")
            close(ev["hamming_loss"], tm["hamming_loss"], 1e-6, f"{name} hamming_loss")
    if "torchmetrics threshold-free" in res:
        for k, v in res["torchmetrics threshold-free"]["result"].items():
            close(ev[k], v, 1e-4, f"torchmetrics {k}")
    if "evalkit full (streaming)" in res:
        st = res["evalkit full (streaming)"]["result"]
        for k in ("mean_average_precision", "macro_auroc", "micro_average_precision", "micro_auroc"):
            close(st[k], ev[k], 1e-3, f"streaming {k}")
        for k in ("label_ranking_average_precision", "coverage_error", "label_ranking_loss"):
            close(st[k], ev[k], 1e-12, f"streaming {k}")
    return checks


# ------------------------------------------------------------------------------------- main


def main_compare(args) -> None:
    n, c = args.n, args.c
    names = list(TASKS)
    if args.skip_slow:
        names.remove("torchmetrics threshold-free")
    res = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        res[name] = _spawn(["--task", name, "--n", str(n), "--c", str(c), "--seed", str(args.seed),
                            "--repeat", str(args.repeat)] + (["--skip-slow"] if args.skip_slow else []))
    checks = check_agreement(res)
    input_mb = n * c * 5 / 2**20
    import torch

    print(f"\nN={n:,} C={c} float32 probabilities + uint8 targets (inputs {input_mb:.0f} MB), seed {args.seed}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeat}; {os.cpu_count()} CPUs")
    print(f"{'task':32s} {'seconds':>9s} {'peak extra MB':>14s} {'x inputs':>9s}")
    for name in names:
        r = res[name]
        pk = r["peak_extra_mb"]
        print(f"{name:32s} {r['seconds']:9.3f} {pk:14.0f} {pk / input_mb:9.2f}")
    t = {k: v["seconds"] for k, v in res.items()}
    ev_th, ev_ex = t["evalkit thresholded"], t["evalkit full (exact)"]
    print("\nratios (higher = evalkit faster)")
    print(f"  thresholded report vs sklearn                 {t['sklearn thresholded'] / ev_th:8.1f}x")
    print(f"  thresholded report vs torchmetrics objects    {t['torchmetrics objects'] / ev_th:8.1f}x")
    print(f"  thresholded report vs torchmetrics collection {t['torchmetrics MetricCollection'] / ev_th:8.1f}x")
    tf_ev = ev_ex - ev_th
    slow = " (without LRAP / ranking loss)" if args.skip_slow else ""
    print(f"  threshold-free (exact full - thresholded = {tf_ev:.3f} s) vs sklearn{slow} "
          f"{t['sklearn threshold-free'] / tf_ev:8.1f}x")
    print(f"  full exact report vs sklearn (both parts)     "
          f"{(t['sklearn thresholded'] + t['sklearn threshold-free']) / ev_ex:8.1f}x")
    sk = res["sklearn threshold-free"]["result"]["_seconds"]
    print("  scikit-learn threshold-free, per metric (s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in sk.items()))
    print(f"  threshold-free without LRAP / ranking loss vs sklearn "
          f"{sum(v for k, v in sk.items() if k not in ('label_ranking_average_precision', 'label_ranking_loss')) / tf_ev:8.1f}x")
    if "torchmetrics threshold-free" in t:
        print(f"  full exact report vs torchmetrics (objects + threshold-free) "
              f"{(t['torchmetrics objects'] + t['torchmetrics threshold-free']) / ev_ex:8.1f}x")
    print(f"\nagreement: {len(checks)} numbers checked (sklearn 1e-9 thresholded / 1e-6 threshold-free, "
          f"torchmetrics 1e-5, streaming 1e-3): all agree")


def write_parquet(path: Path, n: int, c: int, seed: int, row_group: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = [f"l{j}" for j in range(c)]
    schema = pa.schema([pa.field(f"target:{x}", pa.uint8()) for x in labels]
                       + [pa.field(f"prob:{x}", pa.float32()) for x in labels])
    with pq.ParquetWriter(path, schema, compression="none") as w:
        for s in range(0, n, row_group):
            Y, P = make_data(n, c, seed, start=s, rows=min(row_group, n - s))
            cols = [pa.array(Y[:, j]) for j in range(c)] + [pa.array(P[:, j]) for j in range(c)]
            w.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=row_group)


def run_stream(path: str, batch_size: int, bins: int | None) -> dict:
    import torch

    from evalkit.metrics import DEFAULT_BINS, MultilabelEngine
    from evalkit.metrics.io import iter_prediction_batches
    from evalkit.report import metrics_block

    t0 = time.perf_counter()
    engine = None
    n = 0
    for targets, scores, kind, labels in iter_prediction_batches(path, batch_size):
        if engine is None:
            engine = MultilabelEngine(len(labels), scores=kind, threshold=THRESHOLD, beta=BETA,
                                      threshold_free="streaming", bins=bins or DEFAULT_BINS, label_names=labels)
        engine.update(torch.from_numpy(scores), torch.from_numpy(targets))
        n += targets.shape[0]
    r = metrics_block(engine.compute())
    return {"seconds": time.perf_counter() - t0, "rows": n, "peak_rss_mb": _rss_kb("VmHWM") / 1024,
            "summary": r["summary"]}


def main_stream(args) -> None:
    tmp = Path(args.parquet_path) if args.parquet_path else Path(tempfile.mkdtemp()) / "predictions.parquet"
    if not tmp.exists():
        print(f"writing {tmp} ({args.n:,} x {args.c}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        write_parquet(tmp, args.n, args.c, args.seed, args.row_group)
        print(f"  written in {time.perf_counter() - t0:.1f} s, {tmp.stat().st_size / 2**20:.0f} MB",
              file=sys.stderr, flush=True)
    r = _spawn(["--task-stream", str(tmp), "--batch-size", str(args.batch_size)]
               + (["--bins", str(args.bins)] if args.bins else []))
    s = r["summary"]
    print(f"\nstreaming Parquet evaluation: {r['rows']:,} rows x {args.c} labels, batch {args.batch_size}, "
          f"file {tmp.stat().st_size / 2**20:.0f} MB")
    print(f"  time {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB (goal < 1536 MB)")
    print(f"  micro f2 {s['micro']['f2']:.6f}  mAP {s['mean_average_precision']:.6f}  macro AUROC "
          f"{s['macro_auroc']:.6f}  LRAP {s['label_ranking_average_precision']:.6f}")
    if not args.parquet_path:
        tmp.unlink()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="rows (default 200000)")
    ap.add_argument("--c", type=int, default=100, help="labels (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="best-of repeats per task")
    ap.add_argument("--skip-slow", action="store_true",
                    help="skip sklearn LRAP / ranking loss and torchmetrics exact threshold-free metrics")
    ap.add_argument("--stream-parquet", action="store_true",
                    help="write a Parquet file and evaluate it streaming (threshold_free='streaming')")
    ap.add_argument("--parquet-path", help="with --stream-parquet: keep / reuse this file")
    ap.add_argument("--row-group", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=50_000)
    ap.add_argument("--bins", type=int, default=None)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--task-stream", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.task:
        print(json.dumps(run_task(args.task, args.n, args.c, args.seed, args.repeat, args.skip_slow)))
    elif args.task_stream:
        print(json.dumps(run_stream(args.task_stream, args.batch_size, args.bins)))
    elif args.stream_parquet:
        main_stream(args)
    else:
        main_compare(args)


if __name__ == "__main__":
    main()
