import pytest

from evalkit.stats import paired_pvalue


def test_paired_pvalue_known_values():
    from scipy import stats

    a, b = [0.70, 0.72, 0.71], [0.60, 0.65, 0.61]
    assert paired_pvalue(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_pvalue([0.5, 0.6], [0.5, 0.6]) == 1.0
    assert paired_pvalue([0.6, 0.7], [0.5, 0.6]) == 0.0  # constant lead, zero variance
    assert paired_pvalue([0.6], [0.5]) is None
