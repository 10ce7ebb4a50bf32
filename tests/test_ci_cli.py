"""Bootstrap intervals through the CLI: ``--ci`` / ``--ci-resamples`` / ``--ci-method`` of ``run`` and
``evaluate`` (on by default), the terminal's ``0.627 [0.601, 0.652]``, the report JSON and the spec keys."""

from __future__ import annotations

import json
import re

import pytest

INTERVAL = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")
QUICK = ("--epochs", "2", "--hidden", "16", "--folds", "1", "--no-track", "--model", "mlp")


def _state_dict(tmp, n_features=103, n_labels=14):
    import torch

    torch.manual_seed(0)
    torch.save(torch.nn.Linear(n_features, n_labels).state_dict(), tmp / "m.pt")
    return tmp / "m.pt"


def _all_intervals(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k.endswith("_ci")}
    for avg in ("micro", "macro", "weighted", "samples"):
        out |= {f"{avg}.{k}": v for k, v in summary[avg].items() if k.endswith("_ci")}
    return out


def test_run_reports_intervals_by_default_seeded_by_the_run(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")  # the summary table unwrapped, whatever terminal runs the tests
    r = cli("run", *QUICK, "--seed", "3", "-o", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["confidence_interval"] == {"level": 0.95, "resamples": 1000, "method": "percentile", "seed": 3,
                                             "scheme": "poisson", "ranking": "auto",
                                             "studentized": ["mean_average_precision"]}
    s = report["summary"]
    ints = _all_intervals(s)
    assert len(ints) == 21  # 4 averages x (precision, recall, F1, F2) + 5 scalars
    for key, (lo, hi) in ints.items():
        block, _, name = key.rpartition(".")
        point = (s[block] if block else s)[name[:-3]]
        assert lo <= point <= hi, key
        assert hi - lo > 0.005 or point == 0.0, key  # 917 test rows: a real spread (none around 0 of 917 rows)
    # the terminal shows the summary table's values with their interval, as the JSON has them
    shown = {tuple(map(float, m.groups())) for m in INTERVAL.finditer(r.output)}
    m = s["macro"]
    assert (round(m["f2"], 3), round(m["f2_ci"][0], 3), round(m["f2_ci"][1], 3)) in shown
    assert (round(s["mean_average_precision"], 3), *(round(x, 3) for x in s["mean_average_precision_ci"])) in shown
    assert "95% bootstrap intervals (percentile; mAP studentized, 1000 resamples of the 917 test rows, seed 3)" in r.output


def test_run_ci_0_turns_the_intervals_off(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("run", *QUICK, "--ci", "0", "-o", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert "confidence_interval" not in report and not _all_intervals(report["summary"])
    assert "ci_unstable_labels" not in report["summary"]
    assert not INTERVAL.search(r.output) and "bootstrap" not in r.output


def test_evaluate_model_takes_the_flags_and_flags_labels_with_few_positives(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _state_dict(tmp_path)
    args = ("evaluate", "--model", model, "--arch", "linear", "--dataset", "yeast", "--no-track")
    r = cli(*args, "--ci", "0.9", "--ci-resamples", "200", "--ci-method", "bca", "-o", "e.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["confidence_interval"] | {} == {"level": 0.9, "resamples": 200, "method": "bca", "seed": 0,
                                                  "scheme": "poisson", "ranking": "auto"}
    s = report["summary"]
    assert s["ci_unstable_labels"] == []  # yeast's rarest test label (Class14) has 13 positives
    lo, hi = s["micro"]["f2_ci"]
    assert lo <= s["micro"]["f2"] <= hi
    again = cli(*args, "--ci", "0.9", "--ci-resamples", "200", "--ci-method", "bca", "-o", "e2.json")
    assert _all_intervals(json.loads((tmp_path / "e2.json").read_text())["summary"]) == _all_intervals(s)
    pct = cli(*args, "--ci", "0.9", "--ci-resamples", "200", "-o", "e3.json")
    assert pct.exit_code == 0 and _all_intervals(json.loads((tmp_path / "e3.json").read_text())["summary"]) != \
        _all_intervals(s)


def test_a_test_split_with_rare_labels_is_flagged_in_the_terminal(cli, tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    Y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0), np.arange(300) % 50 == 0], axis=1).astype(int)  # "rare": 6 rows
    cols = {f"f{i}": X[:, i] for i in range(5)} | {f"label_{n}": Y[:, j] for j, n in enumerate(("a", "b", "rare"))}
    pd.DataFrame(cols).to_csv("d.csv", index=False)
    r = cli("run", *QUICK, "--dataset", "d.csv", "--label-prefix", "label_", "--test-size", "0.5",
            "--ci-resamples", "100", "-o", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["ci_unstable_labels"] == ["label_rare"]
    flat = " ".join(r.output.split())
    assert "1 label(s) have fewer than 10 positive test rows, too few for a stable interval; the macro " \
           "intervals lean on them: label_rare" in flat


@pytest.mark.parametrize("flag, value, message", [
    ("--ci", "1.5", "--ci: Input should be less than 1"),
    ("--ci-resamples", "5", "--ci-resamples: Input should be greater than or equal to 10"),
    ("--ci-method", "normal", "--ci-method"),
])
def test_bad_interval_flags_exit_2_with_one_line_naming_the_flag(cli, tmp_path, monkeypatch, flag, value, message):
    monkeypatch.chdir(tmp_path)
    r = cli("run", "--no-track", flag, value)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_interval_flags_with_ci_0_are_refused_not_ignored(cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    r = cli(command, "--no-track", "--ci", "0", "--ci-resamples", "200")
    assert r.exit_code == 2
    assert r.output.strip() == ("error: --ci-resamples: applies to confidence intervals (--ci 0.95), not to --ci 0; "
                                "drop it"), r.output
    r = cli(command, "--no-track", "--ci", "0", "--ci-method", "bca")
    assert r.exit_code == 2 and "error: --ci-method: applies to confidence intervals" in r.output, r.output
    r = cli(command, "--no-track", "--ci", "0", "--ci-method", "percentile")  # typed, even at its default
    assert r.exit_code == 2 and "error: --ci-method: applies to confidence intervals" in r.output, r.output


def test_ci_0_turns_off_the_intervals_a_spec_sets_up(cli, tmp_path, monkeypatch):
    """``--ci 0`` over a spec's ``ci_resamples`` (and a grid over ``ci``) is how intervals are turned off,
    not a setting that would be ignored."""
    import numpy as np

    from evalkit.spec import load_spec

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("p.npz", targets=rng.integers(0, 2, (40, 3)), probabilities=rng.random((40, 3)))
    (tmp_path / "job.toml").write_text('[evaluate]\npredictions = "p.npz"\nci_resamples = 200\nci_method = "bca"\n')
    r = cli("evaluate", "--spec", "job.toml", "--ci", "0", "--no-track", "-o", "r.json")
    assert r.exit_code == 0, r.output
    assert "confidence_interval" not in json.loads((tmp_path / "r.json").read_text())
    (tmp_path / "s.toml").write_text('ci_resamples = 300\n[grid]\nci = [0, 0.9]\n')
    assert [(c.ci, c.ci_resamples) for c in load_spec("s.toml").configs({})] == [(0, 300), (0.9, 300)]


def test_spec_keys_set_the_intervals(tmp_path):
    from evalkit.spec import load_spec

    (tmp_path / "s.toml").write_text('ci = 0.8\nci_resamples = 300\nci_method = "bca"\n[grid]\nseed = [0, 1]\n')
    configs = load_spec(str(tmp_path / "s.toml")).configs({})
    assert [(c.ci, c.ci_resamples, c.ci_method, c.seed) for c in configs] == [(0.8, 300, "bca", 0), (0.8, 300, "bca", 1)]


def test_streaming_intervals_do_not_depend_on_the_batching_and_equal_in_memory_ones(tmp_path):
    import numpy as np

    from evalkit import evaluate_scores
    from evalkit.workflows.evaluation import STREAMING_CI_NOTE, evaluate_predictions

    rng = np.random.default_rng(5)
    Y = (rng.random((3000, 6)) < np.linspace(0.05, 0.4, 6)).astype(np.uint8)
    P = np.clip(0.4 * Y + 0.6 * rng.random(Y.shape), 0, 1).astype(np.float32)
    np.savez(tmp_path / "p.npz", targets=Y, probabilities=P)
    kw = dict(ci=0.95, ci_resamples=400, ci_method="bca")
    a = evaluate_predictions(str(tmp_path / "p.npz"), batch_size=1000, **kw)
    b = evaluate_predictions(str(tmp_path / "p.npz"), batch_size=777, **kw)
    ia, ib = _all_intervals(a["summary"]), _all_intervals(b["summary"])  # each row's weights follow its index:
    assert ia.keys() == ib.keys() and all(ia[k] == pytest.approx(ib[k], abs=1e-6) for k in ia)  # float32 sums
    assert a["confidence_interval"]["method"] == "bca" and "without_interval" not in a["confidence_interval"]
    assert "notes" not in a
    mem = evaluate_scores(Y, probabilities=P, **kw)
    sa, sm = _all_intervals(a["summary"]), _all_intervals(mem["summary"])
    assert set(sm) == set(sa) and {"mean_average_precision_ci", "macro_auroc_ci"} <= set(sa)  # mAP from the sort keys
    s = evaluate_predictions(str(tmp_path / "p.npz"), threshold_free="streaming", **kw)  # binned: no per-row score
    assert s["confidence_interval"]["why"] == STREAMING_CI_NOTE
    assert s["confidence_interval"]["without_interval"] == ["mean_average_precision", "macro_auroc"]
    assert "mean_average_precision_ci" not in s["summary"] and "macro_auroc_ci" not in s["summary"]
    for k, (lo, hi) in sa.items():
        block, _, name = k.rpartition(".")
        point = (a["summary"][block] if block else a["summary"])[name[:-3]]
        assert lo <= point <= hi, k
        # the same resamples in memory (each row's Poisson weights from the seed and its index, the same
        # jackknife groups): the same intervals, BCa included, to the streaming sums' float32 rounding
        assert sm[k] == pytest.approx([lo, hi], abs=1e-6), (k, (lo, hi), sm[k])
    pct = evaluate_predictions(str(tmp_path / "p.npz"), ci=0.95, ci_resamples=400)
    mem_pct = evaluate_scores(Y, probabilities=P, ci=0.95, ci_resamples=400)
    sp, smp = _all_intervals(pct["summary"]), _all_intervals(mem_pct["summary"])
    assert sp.keys() == smp.keys() and all(smp[k] == pytest.approx(sp[k], abs=1e-6) for k in sp)
    # mAP's interval is the studentized one on both paths, and both reports say so
    assert pct["confidence_interval"]["studentized"] == mem_pct["confidence_interval"]["studentized"] == [
        "mean_average_precision"]


def test_evaluate_predictions_shows_intervals_and_why_map_has_none_when_binned(cli, tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    Y = (rng.random((400, 4)) < 0.3).astype(np.uint8)
    np.savez("p.npz", targets=Y, probabilities=np.clip(0.4 * Y + 0.6 * rng.random(Y.shape), 0, 1))
    r = cli("evaluate", "--predictions", "p.npz", "--no-track", "-o", "e.json")
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert re.search(r"mAP \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", flat) and "no confidence interval" not in flat
    s = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert s["mean_average_precision_ci"][0] <= s["mean_average_precision"] <= s["mean_average_precision_ci"][1]
    assert s["macro"]["f2_ci"][0] <= s["macro"]["f2"] <= s["macro"]["f2_ci"][1]
    r = cli("evaluate", "--predictions", "p.npz", "--no-track", "--threshold-free", "streaming", "-o", "b.json")
    assert r.exit_code == 0, r.output
    assert "mAP and macro AUROC have no confidence interval with --threshold-free streaming" in " ".join(r.output.split())
    assert "mean_average_precision_ci" not in json.loads((tmp_path / "b.json").read_text())["summary"]


def test_streamed_map_intervals_exact_and_first_order_agree(tmp_path, monkeypatch):
    """A streamed file's mAP / AUROC resamples are the other metrics' resamples (each row's weights by
    its index): exactly (small files) or by influences (large ones), which agree to 5% of the width."""
    import numpy as np

    import evalkit.stats.blocked as blocked
    from evalkit.workflows.evaluation import evaluate_predictions

    rng = np.random.default_rng(5)
    Y = (rng.random((3000, 6)) < np.linspace(0.05, 0.4, 6)).astype(np.uint8)
    P = np.clip(0.4 * Y + 0.6 * rng.random(Y.shape), 0, 1).astype(np.float32)
    np.savez(tmp_path / "p.npz", targets=Y, probabilities=P)
    logits = np.log(P.clip(1e-6, 1 - 1e-6) / (1 - P.clip(1e-6, 1 - 1e-6))).astype(np.float32)
    np.savez(tmp_path / "l.npz", targets=Y, logits=logits)
    for method in ("percentile", "bca"):
        kw = dict(ci=0.95, ci_resamples=400, ci_method=method)
        exact = evaluate_predictions(str(tmp_path / "p.npz"), **kw)["summary"]
        as_logits = evaluate_predictions(str(tmp_path / "l.npz"), **kw)["summary"]  # same ranking, same keys' order
        monkeypatch.setattr(blocked, "EXACT_WEIGHTS", 0)
        linear = evaluate_predictions(str(tmp_path / "p.npz"), **kw)["summary"]
        monkeypatch.undo()
        for k in ("mean_average_precision_ci", "macro_auroc_ci"):
            (lo, hi), (llo, lhi) = exact[k], linear[k]
            assert as_logits[k] == pytest.approx(exact[k], abs=1e-12)
            # an exactly resampled mAP gets the studentized interval (evalkit.stats.studentized), which
            # moves it down by its skew correction (here 6% of the width); the first-order one is percentile
            tol = 0.1 if (method, k) == ("percentile", "mean_average_precision_ci") else 0.05
            assert abs(lo - llo) <= tol * (hi - lo) and abs(hi - lhi) <= tol * (hi - lo), (method, k, exact[k], linear[k])


def test_a_top_k_report_says_how_it_decided_and_why_it_has_no_intervals():
    """Its Notes said "Predictions use probability >= threshold", and the missing intervals went unexplained."""
    import numpy as np
    from rich.console import Console

    from evalkit import evaluate_scores
    from evalkit.cli.ui import render_report
    from evalkit.thresholds import Thresholds
    from evalkit.thresholds.strategy import parse_strategy

    rng = np.random.default_rng(0)
    report = dict(evaluate_scores(rng.integers(0, 2, (30, 4)), probabilities=rng.random((30, 4))))
    out = Console(record=True, width=400)
    render_report(report, out, per_class=False)
    assert "Predictions use probability >= threshold;" in out.export_text()
    report["threshold"] = Thresholds(parse_strategy("top-k:2"), None, n_labels=4).to_dict()
    out = Console(record=True, width=400)
    render_report(report, out, per_class=False)
    text = out.export_text()
    assert ("Predictions are each sample's 2 highest-scoring labels (no per-label cut, so no bootstrap intervals); "
            "undefined values") in text and "probability >= threshold" not in text
