"""Thresholds are fitted on validation scores only: a spy on the fitting function checks that it sees
exactly the validation split (holdout) or the out-of-fold scores of train + validation (cross-fitting),
never a test row."""

import numpy as np
import pytest


def _spy(monkeypatch):
    import evalkit.thresholds as th
    import evalkit.train as tr

    predicted, calls = [], []
    real_predict, real_fit = tr.predict_logits, th.fit_thresholds

    def spy_predict(model, X, *a, **k):
        out = real_predict(model, X, *a, **k)
        predicted.append((X.copy(), out.copy()))
        return out

    def spy_fit(strategy, val_probabilities, val_targets, **kw):
        calls.append((np.array(val_probabilities), np.array(val_targets), kw))
        return real_fit(strategy, val_probabilities, val_targets, **kw)

    monkeypatch.setattr(tr, "predict_logits", spy_predict)
    monkeypatch.setattr(th, "fit_thresholds", spy_fit)
    return predicted, calls


def _sigmoid(z):
    return 1 / (1 + np.exp(-z.astype(np.float64)))


def test_holdout_thresholds_see_exactly_the_validation_split(monkeypatch):
    from evalkit import prepare_data, run_experiment
    from evalkit.config import RunConfig

    config = RunConfig(dataset="yeast", epochs=1, folds=1, threshold="per-class", log_model=False, hidden=[16])
    splits = prepare_data(config)
    predicted, calls = _spy(monkeypatch)
    result = run_experiment(config, track=False)

    assert len(calls) == 1
    probs, targets, kw = calls[0]
    np.testing.assert_array_equal(targets, splits.val.Y)  # the validation targets, not the test ones
    val_logits = [out for X, out in predicted if np.array_equal(X, splits.val.X)]
    assert len(val_logits) == 1
    np.testing.assert_allclose(probs, _sigmoid(val_logits[0]), rtol=1e-6)
    assert kw["train_cardinality"] == pytest.approx(splits.train.label_cardinality)
    assert result.report["threshold"]["fitted_on"] == "validation"
    assert "reference_at_0.5" in result.report


def test_cross_fitted_thresholds_see_only_out_of_fold_scores(monkeypatch):
    from evalkit import prepare_data, run_experiment
    from evalkit.config import RunConfig

    config = RunConfig(dataset="yeast", epochs=1, folds=2, threshold="joint", log_model=False, hidden=[16])
    splits = prepare_data(config)
    full_X = np.concatenate([splits.train.X, splits.val.X])
    full_Y = np.concatenate([splits.train.Y, splits.val.Y])
    predicted, calls = _spy(monkeypatch)
    run_experiment(config, track=False)

    assert len(calls) == 1
    probs, targets, _ = calls[0]
    np.testing.assert_array_equal(targets, full_Y)  # train + validation rows, in order; no test row
    # every fitted score is the out-of-fold prediction of a fold model (each row predicted exactly once)
    row = {x.tobytes(): i for i, x in enumerate(full_X)}
    covered = np.zeros(len(full_X), dtype=int)
    for X, out in predicted:
        if X.shape[0] == splits.test.n_samples and np.array_equal(X, splits.test.X):
            continue  # the test split is scored by the ensemble, but never handed to the fit
        idx = np.array([row[x.tobytes()] for x in X])
        covered[idx] += 1
        np.testing.assert_allclose(probs[idx], _sigmoid(out), rtol=1e-6)
    assert (covered == 1).all()
