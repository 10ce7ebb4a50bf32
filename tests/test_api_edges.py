"""evaluate_scores and the metric engine at their edges, as a notebook user meets them: torch tensors
that require grad or are bfloat16, ragged lists, thresholds outside (0, 1), repeated label names,
read-only weights, tiny weights. Every bad input is an InputError naming the argument."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from evalkit import evaluate_scores
from evalkit.errors import InputError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    Y = (rng.random((60, 4)) < 0.4).astype(np.uint8)
    P = rng.random((60, 4))
    return Y, P


def test_torch_tensors_that_require_grad_or_are_bfloat16_are_evaluated(data):
    """``np.asarray`` of such a tensor raised torch's RuntimeError / TypeError."""
    Y, P = data
    logits = torch.tensor(np.log(P / (1 - P)), dtype=torch.float32)
    ref = evaluate_scores(Y, logits=logits.numpy())["summary"]
    graph = logits.clone().requires_grad_(True) * 1.0  # an output still attached to its graph
    got = evaluate_scores(torch.from_numpy(Y), logits=graph)["summary"]
    assert got["macro"]["f2"] == ref["macro"]["f2"] and got["mean_average_precision"] == ref["mean_average_precision"]
    half = logits.bfloat16()
    got = evaluate_scores(Y, logits=half)["summary"]
    same = evaluate_scores(Y, logits=half.float().numpy())["summary"]  # bfloat16 is upcast exactly
    assert got["macro"]["f2"] == same["macro"]["f2"]
    assert got["label_ranking_loss"] == same["label_ranking_loss"]
    targets = torch.from_numpy(Y).float().requires_grad_(True)
    assert evaluate_scores(targets, probabilities=torch.from_numpy(P))["summary"]["macro"]["f2"] == \
        evaluate_scores(Y, probabilities=P)["summary"]["macro"]["f2"]


@pytest.mark.parametrize("kw, match", [
    (dict(targets=[[0, 1], [1]], probabilities=[[0.1, 0.2], [0.3, 0.4]]), r"^targets: expected an \(N, C\) array"),
    (dict(targets=[[0, 1], [1, 0]], probabilities=[[0.1, 0.2], [0.3]]), r"^probabilities: expected an \(N, C\) array"),
    (dict(targets=[0, 1, 1], probabilities=[0.2, 0.4, 0.9]),
     r"^targets: expected shape \(N, C\), got \(3,\) \(one label: pass targets.reshape\(-1, 1\)"),
])
def test_ragged_or_one_dimensional_input_is_an_input_error_naming_the_argument(kw, match):
    """A ragged nested list raised numpy's ValueError ("setting an array element with a sequence")."""
    with pytest.raises(InputError, match=match):
        evaluate_scores(**kw)


@pytest.mark.parametrize("threshold, match", [
    (0.0, r"expected cuts in \(0, 1\) \(the rule is probability >= threshold\), got 0$"),
    (1.0, r"got 1$"),
    (1.5, r"got 1.5$"),
    (-0.1, r"got -0.1$"),
    (float("inf"), r"got inf$"),
    (float("nan"), r"got nan$"),
    ([0.3, 0.5, 1.2, 0.5], r"got 1.2$"),
    ([0.3, 0.5, 0.5], r"expected a number in \(0, 1\) or 4 of them \(one per label\), got shape \(3,\)$"),
    ([[0.3, 0.5, 0.5, 0.5]], r"got shape \(1, 4\)$"),
    ("high", r"got 'high'$"),
    (None, r"got None$"),
])
def test_threshold_outside_the_unit_interval_or_of_the_wrong_shape_is_refused(data, threshold, match):
    """The docstring (and every other entry point: --threshold, Thresholds) takes cuts in (0, 1);
    evaluate_scores accepted 1.5 or inf (a report claiming ``fixed:inf`` with ``Infinity`` in its JSON)
    and raised numpy's ValueError / TypeError for 'high' or a nested list."""
    Y, P = data
    with pytest.raises(InputError, match=match) as e:
        evaluate_scores(Y, probabilities=P, threshold=threshold)
    assert str(e.value).startswith("threshold: expected ") and "\n" not in str(e.value)


def test_threshold_in_the_unit_interval_as_list_array_or_tensor(data):
    Y, P = data
    cuts = [0.3, 0.4, 0.5, 0.6]
    ref = skm.fbeta_score(Y, P >= np.array(cuts), beta=2, average="macro")
    for given in (cuts, np.array(cuts), torch.tensor(cuts, dtype=torch.float64)):
        r = evaluate_scores(Y, probabilities=P, threshold=given)
        assert r["summary"]["macro"]["f2"] == pytest.approx(ref, abs=1e-12)
        assert r["threshold"]["values"] == cuts
    r = evaluate_scores(Y, probabilities=P, threshold=0.3)
    assert r["threshold"] == {"strategy": "fixed:0.3", "values": [0.3] * 4}
    json.loads(r.to_json())  # valid JSON


@pytest.mark.parametrize("names, match", [
    (["a", "a", "b", "c"], r"^label_names: 'a' given twice; expected distinct names$"),
    ([1, "1", 2, 3], r"^label_names: '1' given twice; expected distinct names$"),
    ("abcd", r"^label_names: expected a sequence of 4 names, got str$"),
    (5, r"^label_names: expected a sequence of 4 names, got int$"),
    (["a", "b"], r"^label_names: expected 4 names, got 2$"),
])
def test_label_names_must_be_distinct_names_one_per_label(data, names, match):
    """Repeated names were accepted: per-class metric keys collided (``test/class/a/support`` held the
    second label's support only) and a plain string was split into characters; 5 raised a TypeError."""
    Y, P = data
    with pytest.raises(InputError, match=match):
        evaluate_scores(Y, probabilities=P, label_names=names)
    from evalkit.metrics import compute_metrics

    with pytest.raises(InputError, match=match):
        compute_metrics(Y, P, scores_kind="probabilities", label_names=names)


def test_targets_without_label_columns_name_the_targets(data):
    Y, P = data
    with pytest.raises(InputError, match=r"^targets: expected at least one label column \(C >= 1\), got shape \(60, 0\)$"):
        evaluate_scores(Y[:, :0], probabilities=P[:, :0])


def test_sample_weight_is_copied_not_kept_as_a_view_of_the_callers_array(data):
    """The engine kept a view of a float64 weight array until compute(): zeroing it between update()
    and compute() changed AP; a read-only array (a pandas Series' values, np.broadcast_to) made torch
    warn that it "does not support non-writable tensors"."""
    from evalkit.metrics import MultilabelEngine

    Y, P = data
    w = np.linspace(0.5, 2.0, len(Y))
    expected = skm.average_precision_score(Y, P, average="micro", sample_weight=w.copy())
    e = MultilabelEngine(4, scores="probabilities")
    e.update(torch.from_numpy(P), torch.from_numpy(Y), w)
    w[:30] = 0.0
    assert e.compute().micro_average_precision == pytest.approx(expected, abs=1e-12)
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ro in (pd.Series(np.ones(len(Y))), np.broadcast_to(1.0, (len(Y),))):
            r = evaluate_scores(Y, probabilities=P, sample_weight=ro)
            assert r["summary"]["micro"]["f2"] == evaluate_scores(Y, probabilities=P)["summary"]["micro"]["f2"]


def test_uniformly_tiny_weights_are_refused_not_underflowed(data):
    """All weights 1e-100 (same metrics as unit weights) gave macro AUROC null and MCC 0 (products of
    weighted counts underflow), and a ZeroDivisionError with ci=."""
    Y, P = data
    unit = evaluate_scores(Y, probabilities=P)["summary"]
    small = evaluate_scores(Y, probabilities=P, sample_weight=np.full(len(Y), 1e-29))["summary"]
    for get in (lambda s: s["macro_auroc"], lambda s: s["micro"]["mcc"], lambda s: s["macro"]["f2"]):
        assert get(small) == pytest.approx(get(unit), abs=1e-12)
    for kw in ({}, dict(ci=0.9, ci_resamples=20)):
        with pytest.raises(InputError, match=r"^sample_weight: the largest weight is 1e-100; expected at least 1e-30 "
                                             r"\(multiply them by a common factor: no metric changes\)$"):
            evaluate_scores(Y, probabilities=P, sample_weight=np.full(len(Y), 1e-100), **kw)


def test_compute_metrics_takes_a_numpy_integer_batch_size(data):
    """``batch_size=np.int64(16)`` was refused as "expected a positive integer, got np.int64(16)"."""
    from evalkit.metrics import compute_metrics

    Y, P = data
    whole = compute_metrics(Y, P, scores_kind="probabilities")
    batched = compute_metrics(Y, P, scores_kind="probabilities", batch_size=np.int64(16))
    assert batched.macro == whole.macro and batched.label_ranking_loss == whole.label_ranking_loss
    with pytest.raises(InputError, match=r"^batch_size: expected a positive integer, got np.int64\(0\)$"):
        compute_metrics(Y, P, scores_kind="probabilities", batch_size=np.int64(0))


def test_a_numpy_float32_confidence_level_is_taken(data):
    """``ci=np.float32(0.9)`` was refused ("expected a confidence level in (0, 1) ..., got np.float32(0.9)"),
    though numpy integer ci_resamples / seed were taken."""
    Y, P = data
    r = evaluate_scores(Y, probabilities=P, ci=np.float32(0.9), ci_resamples=np.int64(20), seed=np.int64(1))
    ref = evaluate_scores(Y, probabilities=P, ci=float(np.float32(0.9)), ci_resamples=20, seed=1)
    assert r["summary"]["macro"]["f2_ci"] == ref["summary"]["macro"]["f2_ci"]
    assert type(r["confidence_interval"]["level"]) is float
    json.loads(r.to_json())
    with pytest.raises(InputError, match=r"^ci: expected a confidence level in \(0, 1\) such as 0.95, got True$"):
        evaluate_scores(Y, probabilities=P, ci=True)


def test_evaluate_predictions_takes_a_number_or_one_threshold_per_label_from_python(tmp_path):
    """A list of thresholds was read as ``--threshold`` text ("--threshold: unknown strategy '[0.5, 0.4]'"):
    the Python API takes a number or a sequence, checked under the argument's own name."""
    from sklearn.metrics import f1_score

    from evalkit import evaluate_predictions

    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    p = np.array([[.9, .2], [.3, .8], [.6, .45], [.35, .1], [.45, .42]])
    np.savez(tmp_path / "p.npz", targets=y, probabilities=p)
    for given, cut in (([0.5, 0.4], [0.5, 0.4]), (np.array([0.4, 0.5]), [0.4, 0.5]), (0.3, [0.3, 0.3]),
                       ("0.3", [0.3, 0.3])):
        report = json.loads(evaluate_predictions(str(tmp_path / "p.npz"), threshold=given).to_json())
        assert report["summary"]["micro"]["f1"] == pytest.approx(f1_score(y, p >= np.array(cut), average="micro"),
                                                                 abs=1e-12)
        assert report["threshold"]["values"] == cut
    for given, message in (((0.2,), "threshold: expected 2 thresholds (one per label), got 1"),
                           ([0.5, 1.0], "threshold: every threshold must lie in (0, 1)"),
                           (["a", "b"], "threshold: thresholds must be numbers, got ['a', 'b']")):
        with pytest.raises(InputError) as e:
            evaluate_predictions(str(tmp_path / "p.npz"), threshold=given)
        assert str(e.value) == message
