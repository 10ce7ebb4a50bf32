"""Quality and cost of evalkit's defaults against two scikit-learn baselines, on MULAN datasets.

    python benchmarks/bench_quality.py [DIR] [--no-yeast] [--only NAME ...] [--out results.json]

DIR (default ``../shared/datasets/mulan`` next to the repository) holds one folder per dataset. A
dataset is ``NAME-train.arff`` + ``NAME-test.arff`` (MULAN's standard split) with the MULAN XML
label file; a dataset with a single ``NAME.arff`` gets evalkit's documented split: a seeded
(seed 0) iteratively stratified 70 / 30 train / test split (``--test-size 0.3``), the same for the
baselines. The built-in ``yeast`` (standard split) is added unless ``--no-yeast``.

Methods, each in its own process (seconds = wall time of that process, peak RSS = its ``ru_maxrss``):

* ``evalkit``: ``evalkit run`` with no flags but the data (tracked to a temporary MLflow store), so
  the seconds and RSS are the whole default run. Run twice: the defaults (F2 columns, mAP, seconds,
  RSS) and ``--beta 1`` (thresholds tuned for F1: the F1 columns).
* ``sk-mlp``: ``MLPClassifier(hidden_layer_sizes=(256,), early_stopping=True, random_state=0)``;
* ``sk-logreg``: ``OneVsRestClassifier(LogisticRegression(max_iter=1000))``;

both on features standardised with the training split's statistics (sparse data: scaled, not
centred), every label cut at 0.5. Metrics come from evalkit's metric engine on the test split.
Prints one Markdown table: micro-F1, macro-F1, micro-F2, macro-F2, mAP, seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def find_datasets(root: Path, yeast: bool = True) -> list[dict]:
    """``[{"name", "dataset", "test_dataset"}]`` for every MULAN dataset under ``root``."""
    out = [{"name": "yeast", "dataset": "yeast", "test_dataset": None}] if yeast else []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        name = folder.name
        train, test, single = (folder / f"{name}-train.arff", folder / f"{name}-test.arff", folder / f"{name}.arff")
        if train.is_file() and test.is_file():
            out.append({"name": name, "dataset": str(train), "test_dataset": str(test)})
        elif single.is_file():
            out.append({"name": name, "dataset": str(single), "test_dataset": None})
    return out


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; ``(seconds, peak RSS MB of that process, stdout)``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def evalkit_run(ds: dict, tmp: Path, extra: list[str]) -> tuple[dict, float, float]:
    report = tmp / f"{ds['name']}{'-'.join(extra)}.json"
    cmd = [PY, "-m", "evalkit", "run", "--dataset", ds["dataset"], "--output", str(report),
           "--tracking-uri", f"sqlite:///{tmp}/mlflow.db", *extra]
    if ds["test_dataset"]:
        cmd += ["--test-dataset", ds["test_dataset"]]
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="200")
    seconds, rss, _ = run_measured(cmd, env)
    return json.loads(report.read_text()), seconds, rss


def summary_row(summary: dict, key: str) -> dict:
    return {f"micro_{key}": summary["micro"][key], f"macro_{key}": summary["macro"][key]}


def baseline(method: str, dataset: str, test_dataset: str | None) -> dict:
    """Fit one scikit-learn baseline (runs in its own process); metrics at a 0.5 cut."""
    import numpy as np

    from evalkit.data import load_dataset, make_splits, standardize
    from evalkit.metrics import compute_metrics
    from evalkit.report import metrics_block

    train, test = load_dataset(dataset, test_dataset)
    splits = standardize(make_splits(train, test, test_size=0.3, seed=0))
    X = splits.train.X if splits.val is None else _vstack(splits.train.X, splits.val.X)
    Y = np.concatenate([splits.train.Y, splits.val.Y])
    keep = Y.sum(axis=0) > 0  # labels without a positive: probability 0
    if method == "sk-mlp":
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=(256,), early_stopping=True, random_state=0)
    else:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        clf = OneVsRestClassifier(LogisticRegression(max_iter=1000))
    clf.fit(X, Y[:, keep])
    P = np.zeros(splits.test.Y.shape)
    P[:, keep] = np.asarray(clf.predict_proba(splits.test.X))
    out = {}
    for beta in (1.0, 2.0):
        s = metrics_block(compute_metrics(splits.test.Y, P, scores_kind="probabilities", threshold=0.5, beta=beta,
                                          threshold_free="exact" if beta == 2.0 else "none"))["summary"]
        out.update(summary_row(s, f"f{beta:g}"))
        if beta == 2.0:
            out["map"] = s["mean_average_precision"]
    return out


def _vstack(a, b):
    from evalkit.data.sparse import vstack

    return vstack([a, b])


def fmt(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=str(ROOT.parent / "shared" / "datasets" / "mulan"))
    ap.add_argument("--no-yeast", action="store_true")
    ap.add_argument("--only", nargs="*", help="dataset names to run")
    ap.add_argument("--methods", nargs="*", default=["evalkit", "sk-mlp", "sk-logreg"])
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--baseline", help=argparse.SUPPRESS)  # internal: one baseline in this process
    ap.add_argument("--test-dataset", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        print(json.dumps(baseline(args.baseline, args.dir, args.test_dataset)))
        return
    datasets = [d for d in find_datasets(Path(args.dir), not args.no_yeast) if not args.only or d["name"] in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for ds in datasets:
            for method in args.methods:
                if method == "evalkit":
                    rep2, seconds, rss = evalkit_run(ds, tmp, [])
                    rep1, _, _ = evalkit_run(ds, tmp, ["--beta", "1"])
                    row = {**summary_row(rep1["summary"], "f1"), **summary_row(rep2["summary"], "f2"),
                           "map": rep2["summary"]["mean_average_precision"],
                           "chosen": rep2["training"].get("model"),
                           "folds": rep2["training"].get("folds")}
                else:
                    cmd = [PY, __file__, ds["dataset"], "--baseline", method]
                    if ds["test_dataset"]:
                        cmd += ["--test-dataset", ds["test_dataset"]]
                    seconds, rss, text = run_measured(cmd, dict(os.environ, PYTHONPATH=str(ROOT)))
                    row = json.loads(text.strip().splitlines()[-1])
                row.update(dataset=ds["name"], method=method, seconds=seconds, rss_mb=rss)
                rows.append(row)
                print(f"# {ds['name']} {method}: {json.dumps(row)}", file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    print("| dataset | method | micro-F1 | macro-F1 | micro-F2 | macro-F2 | mAP | seconds | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        method = r["method"] + (f" ({r['chosen']})" if r.get("chosen") else "")
        print(f"| {r['dataset']} | {method} | {fmt(r['micro_f1'])} | {fmt(r['macro_f1'])} | {fmt(r['micro_f2'])} | "
              f"{fmt(r['macro_f2'])} | {fmt(r['map'])} | {r['seconds']:.0f} | {r['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
