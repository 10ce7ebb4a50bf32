"""Thresholds are fitted on the validation split only: a spy on the fitting function sees exactly the
validation split's targets and the model's probabilities for the validation features."""

import numpy as np
import pytest


@pytest.mark.parametrize("strategy", ["global", "per-class"])
def test_fit_thresholds_sees_only_the_validation_split(monkeypatch, strategy):
    import evalkit.thresholds as th
    import evalkit.train as tr
    from evalkit.api import prepare_data, run_experiment
    from evalkit.config import RunConfig

    config = RunConfig(dataset="yeast", epochs=1, threshold=strategy, log_model=False, hidden=[16])
    splits = prepare_data(config)
    predicted: list[tuple[np.ndarray, np.ndarray]] = []
    real_predict = tr.predict_logits

    def spy_predict(model, X, *a, **k):
        out = real_predict(model, X, *a, **k)
        predicted.append((X.copy(), out.copy()))
        return out

    calls = []
    real_fit = th.fit_thresholds

    def spy_fit(strategy, val_probabilities, val_targets, **kw):
        calls.append((np.array(val_probabilities), np.array(val_targets), kw))
        return real_fit(strategy, val_probabilities, val_targets, **kw)

    monkeypatch.setattr(tr, "predict_logits", spy_predict)
    monkeypatch.setattr(th, "fit_thresholds", spy_fit)
    result = run_experiment(config, track=False)

    assert len(calls) == 1
    probs, targets, kw = calls[0]
    np.testing.assert_array_equal(targets, splits.val.Y)  # the validation targets, not the test ones
    assert probs.shape == splits.val.Y.shape != splits.test.Y.shape
    val_logits = [out for X, out in predicted if X.shape == splits.val.X.shape and np.array_equal(X, splits.val.X)]
    assert len(val_logits) == 1
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-val_logits[0].astype(np.float64))), rtol=1e-6)
    assert kw["train_cardinality"] == pytest.approx(splits.train.label_cardinality)
    # and the report states where the thresholds came from
    assert result.report["threshold"]["fitted_on"] == "validation"
    assert "reference_at_0.5" in result.report
