import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.thresholds import fbeta_curve, fit_thresholds, parse_strategy


def test_parse_fixed_and_errors():
    assert parse_strategy("fixed:0.3").value == 0.3
    assert parse_strategy("per-class").name == "per-class"
    with pytest.raises(InputError, match=r"--threshold: a fixed threshold must lie in \(0, 1\), got 1.5"):
        parse_strategy("fixed:1.5")
    with pytest.raises(InputError, match="--threshold: unknown strategy 'magic'"):
        parse_strategy("magic")


def test_fbeta_curve_groups_ties():
    p = np.array([0.9, 0.8, 0.8, 0.1])
    t = np.array([1, 0, 1, 0])
    cuts, f = fbeta_curve(p, t, beta=1.0)
    np.testing.assert_allclose(cuts, [0.9, 0.8, 0.1])
    # cut 0.9: tp1 fp0 fn1 -> 2/3 ; cut 0.8: tp2 fp1 fn0 -> 0.8 ; cut 0.1: tp2 fp2 -> 4/6
    np.testing.assert_allclose(f, [2 / 3, 0.8, 2 / 3])


def test_per_class_finds_known_optimal_cut():
    # label 0: positives at 0.6, 0.7 ; negatives at 0.2, 0.65 -> F2 best when all >= 0.6 predicted
    P = np.array([[0.6, 0.9], [0.7, 0.1], [0.2, 0.8], [0.65, 0.3]])
    Y = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    thr = fit_thresholds(parse_strategy("per-class"), P, Y, beta=2.0)
    # label 0: cut between 0.6 and 0.2 -> 0.4 ; label 1: positives 0.9, 0.8 -> cut between 0.8 and 0.3
    np.testing.assert_allclose(thr, [0.4, 0.55])
    assert ((P >= thr) == np.array([[1, 1], [1, 0], [0, 1], [1, 0]])).all()


def test_per_class_falls_back_without_positives():
    P = np.array([[0.2, 0.9], [0.3, 0.1]])
    Y = np.array([[0, 1], [0, 0]])
    thr = fit_thresholds(parse_strategy("per-class"), P, Y)
    assert thr[0] == 0.5
