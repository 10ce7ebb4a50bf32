"""Logits become probabilities in float64, so confident scores are not tied by float32 saturation."""

from __future__ import annotations

import numpy as np
import torch

from evalkit.metrics import binarize
from evalkit.scores import sigmoid
from evalkit.thresholds.fit import fit_thresholds
from evalkit.thresholds.value import ThresholdStrategy


def test_sigmoid_is_float64_and_keeps_confident_logits_apart():
    logits = np.array([[-100.0, -90.0, 0.0, 17.0, 18.0, 20.0, 30.0]], dtype=np.float32)
    p = sigmoid(logits)
    assert p.dtype == np.float64 and p.shape == logits.shape
    assert np.all(np.diff(p[0]) > 0)  # strictly increasing: no value saturates to exactly 0 or 1
    np.testing.assert_allclose(p, 1.0 / (1.0 + np.exp(-logits.astype(np.float64))), rtol=1e-15)
    assert torch.sigmoid(torch.from_numpy(logits))[0, 3:].eq(1.0).all()  # what float32 would have given


def test_threshold_fitted_on_saturating_logits_separates_positives_from_negatives():
    logits = np.array([25.0, 30.0, 35.0, 18.0, 20.0, 22.0], dtype=np.float32)[:, None]
    targets = np.array([1, 1, 1, 0, 0, 0])[:, None]
    p = sigmoid(logits)
    cut = fit_thresholds(ThresholdStrategy("per-class"), p, targets, beta=1.0, min_positives=1)
    assert sigmoid(np.float32(22.0)) < cut[0] <= sigmoid(np.float32(25.0))
    decided = binarize(torch.from_numpy(p), cut).numpy().astype(int)
    np.testing.assert_array_equal(decided, targets)


def test_evaluate_scores_takes_the_scores_kind_by_keyword_only():
    import pytest

    from evalkit import evaluate_scores
    from evalkit.errors import InputError

    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.3, 0.8], [0.7, 0.6], [0.1, 0.4]])
    with pytest.raises(TypeError, match="positional"):
        evaluate_scores(Y, p)  # probabilities passed where logits would have been assumed
    with pytest.raises(InputError, match="pass exactly one of logits or probabilities"):
        evaluate_scores(Y)
    with pytest.raises(InputError, match="pass exactly one of logits or probabilities"):
        evaluate_scores(Y, logits=p, probabilities=p)
    by_kind = evaluate_scores(Y, probabilities=p)["summary"]["micro"]
    assert by_kind["f1"] == 1.0  # every 0.5 cut right
    assert evaluate_scores(Y, logits=p)["summary"]["micro"]["precision"] == 0.5  # sigmoid(p) >= 0.5 everywhere
