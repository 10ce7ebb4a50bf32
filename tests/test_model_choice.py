"""--model auto (choice on validation data only), sparse data kept sparse, the training-budget rule."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.config import RunConfig, budget_batch_size, budget_epochs, budget_folds


def _linear_problem(path, n=300, f=20, c=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    W = rng.normal(size=(f, c))
    Y = (X @ W + 0.3 * rng.normal(size=(n, c)) > 0.8).astype(np.uint8)
    np.savez(path, X=X, Y=Y)
    return path


def _sparse_problem(path, n=240, f=60, c=3, seed=1):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.random(n, f, density=0.05, format="csr", random_state=seed, dtype=np.float32)
    X.data[:] = 1.0
    W = rng.normal(size=(f, c))
    Y = (np.asarray(X @ W) + 0.1 * rng.normal(size=(n, c)) > 0.1).astype(np.uint8)
    Y[:5] = 1
    np.savez(path, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape),
             format=np.array("csr"), Y=Y)
    return path, X, Y


def _small(**kw):
    return dict(epochs=8, hidden=[16], patience=3, log_model=False, **kw)


def test_auto_picks_linear_on_a_linear_problem_and_never_sees_test(tmp_path, monkeypatch):
    from evalkit.workflows import model_choice
    from evalkit.workflows.experiment import prepare_data, run_experiment

    path = _linear_problem(tmp_path / "lin.npz")
    config = RunConfig(dataset=str(path), folds=1, **_small())
    test_Y = prepare_data(config).test.Y
    seen = []
    real = model_choice.validation_map

    def spy(Y, P):
        seen.append(Y)
        return real(Y, P)

    monkeypatch.setattr(model_choice, "validation_map", spy)
    notes = []
    res = run_experiment(config, track=False, on_event=lambda e: notes.append(e.data.get("text")) if e.kind == "note" else None)
    info = res.report["training"]
    assert info["model"] == "linear"
    assert [r["model"] for r in info["model_choice"]] == ["linear", "mlp"]
    assert len(seen) == 2
    for Y in seen:  # the chooser scored validation rows only: never the test split
        assert Y.shape[0] != test_Y.shape[0] or not np.array_equal(Y, test_Y)
    assert any(t and "--model auto chose linear" in t for t in notes)


def test_named_model_is_kept(tmp_path):
    from evalkit.workflows.experiment import run_experiment

    path = _linear_problem(tmp_path / "lin.npz")
    res = run_experiment(RunConfig(dataset=str(path), model="mlp", folds=2, **_small()), track=False)
    assert res.report["training"]["model"] == "mlp"
    assert "model_choice" not in res.report["training"]


def test_sparse_npz_is_read_as_csr_and_trained_sparse(tmp_path, monkeypatch):
    import scipy.sparse as sp

    import evalkit.train as train_mod
    from evalkit.data import load_dataset
    from evalkit.workflows.experiment import run_experiment

    path, X, Y = _sparse_problem(tmp_path / "bow.npz")
    ds, _ = load_dataset(str(path), None)
    assert sp.issparse(ds.X) and ds.X.nnz == X.nnz
    np.testing.assert_array_equal(ds.X.toarray(), X.toarray())
    seen = []
    real = train_mod.train_model

    def spy(model, loss_fn, X_train, *a, **kw):
        seen.append(type(X_train))
        return real(model, loss_fn, X_train, *a, **kw)

    monkeypatch.setattr(train_mod, "train_model", spy)
    res = run_experiment(RunConfig(dataset=str(path), folds=2, **_small()), track=False)
    assert seen and all(t.__name__.startswith("csr") for t in seen)  # never densified as a whole
    assert res.report["summary"]["mean_average_precision"] is not None


def test_sparse_x_layout_npz(tmp_path):
    import scipy.sparse as sp

    from evalkit.data import load_dataset

    X = sp.random(30, 7, density=0.2, format="csr", random_state=0, dtype=np.float32)
    Y = np.tile(np.array([[1, 0], [0, 1], [1, 1]], np.uint8), (10, 1))
    np.savez(tmp_path / "x.npz", X_data=X.data, X_indices=X.indices, X_indptr=X.indptr, X_shape=np.array(X.shape), Y=Y)
    ds, _ = load_dataset(str(tmp_path / "x.npz"), None)
    assert sp.issparse(ds.X)
    np.testing.assert_allclose(ds.X.toarray(), X.toarray())


def test_sparse_standardisation_scales_without_centring():
    import scipy.sparse as sp

    from evalkit.data.split import standardization_stats, zscore

    X = sp.random(50, 6, density=0.3, format="csr", random_state=0, dtype=np.float32)
    mean, std = standardization_stats(X)
    assert (mean == 0).all()
    np.testing.assert_allclose(std, np.maximum(X.toarray().std(axis=0), 0) + (X.toarray().std(axis=0) == 0), rtol=1e-5)
    Z = zscore(X, mean, std)
    assert sp.issparse(Z)
    np.testing.assert_allclose(Z.toarray(), zscore(X.toarray(), mean, std), rtol=1e-5)


def test_budget_rule():
    assert [budget_folds(n) for n in (300, 3_000, 3_001, 8_000, 8_001, 11_200)] == [5, 5, 3, 3, 1, 1]
    assert budget_batch_size(1_200) == 64 and budget_batch_size(8_960) == 128 and budget_batch_size(10**6) == 512
    assert budget_epochs(1e8, 5) == 150  # small problems keep the cap
    assert budget_epochs(1.376e10, 1) == 29  # the synthetic 16k x 500 x 1000 problem
    assert budget_epochs(1e13, 5) == 20  # never below 20

    yeast = RunConfig().with_budget(1_500, 103, 14)
    assert (yeast.folds, yeast.epochs, yeast.batch_size) == (5, 150, 64)
    large = RunConfig().with_budget(11_200, 500, 1_000)
    assert (large.folds, large.batch_size) == (1, 128) and large.epochs < 150
    given = RunConfig(folds=5, epochs=150).with_budget(11_200, 500, 1_000)
    assert (given.folds, given.epochs) == (5, 150)  # explicit values win
    assert RunConfig(budget="off").with_budget(11_200, 500, 1_000).folds == 5


@pytest.mark.parametrize("arch", ["linear", "mlp"])
def test_named_architectures_still_build(arch):
    from evalkit.models import build_model

    assert build_model(arch, 5, 3, hidden=[4]) is not None


def test_fast_map_matches_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score

    from evalkit.metrics.threshold_free import mean_average_precision

    rng = np.random.default_rng(0)
    Y = (rng.random((300, 6)) < 0.1).astype(np.uint8)
    Y[0] = 1
    Y[:, 5] = 0  # no positive: left out
    P = np.round(rng.random((300, 6)), 2)  # many ties
    expected = np.mean([average_precision_score(Y[:, j], P[:, j]) for j in range(5)])
    assert mean_average_precision(Y, P) == pytest.approx(expected, abs=1e-12)


def test_cross_fitted_linear_choice_scores_test_with_a_refit_like_scikit_learn(tmp_path, monkeypatch):
    """With folds > 1 the chosen linear model (L-BFGS to convergence, C = 1) is refitted on all
    train + validation rows for the test scores, as scikit-learn's LogisticRegression is fitted;
    thresholds stay on the out-of-fold scores."""
    from sklearn.linear_model import LogisticRegression

    from evalkit.scores import sigmoid
    from evalkit.train import predict_logits
    from evalkit.workflows import model_choice
    from evalkit.workflows.experiment import prepare_data, run_experiment

    path = _linear_problem(tmp_path / "lin.npz", n=400)
    config = RunConfig(dataset=str(path), folds=3, **_small())
    refits = []
    real = model_choice._refit_linear
    monkeypatch.setattr(model_choice, "_refit_linear", lambda *a: refits.append(real(*a)) or refits[-1])
    res = run_experiment(config, track=False)
    info = res.report["training"]
    assert info["model"] == "linear" and info["scoring_model"] == "linear refit on train + validation"
    assert len(refits) == 1
    splits = prepare_data(config)
    X = np.vstack([splits.train.X, splits.val.X])
    Y = np.vstack([splits.train.Y, splits.val.Y])
    ours = sigmoid(predict_logits(refits[0], splits.test.X, "cpu"))
    theirs = np.column_stack([LogisticRegression(C=1.0).fit(X, Y[:, j]).predict_proba(splits.test.X)[:, 1]
                              for j in range(Y.shape[1])])
    assert np.abs(ours - theirs).max() < 2e-3
    assert res.report["summary"]["mean_average_precision"] == pytest.approx(
        model_choice.validation_map(splits.test.Y, theirs), abs=2e-3)
