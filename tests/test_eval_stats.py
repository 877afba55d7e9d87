"""Confidence intervals and the paired test behind the evaluation report's comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.evaluation.sets import intervals
from tools.evaluation.stats import (
    accuracy_interval,
    bootstrap_mean_interval,
    mae_interval,
    mcnemar,
    wilson_interval,
)


def test_wilson_interval_matches_textbook_values():
    # Newcombe (1998), table I: 0/10 -> 0 to 0.2775; 5/10 -> 0.2366 to 0.7634
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_wilson_interval_narrows_with_more_faces():
    small, large = wilson_interval(65, 100), wilson_interval(2330, 3579)
    assert small[1] - small[0] > 3 * (large[1] - large[0])
    assert large[0] < 2330 / 3579 < large[1]
    assert accuracy_interval([1, 2, 3, 3], [1, 2, 0, 3]) == wilson_interval(3, 4)


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    rng = np.random.default_rng(1)
    errors = rng.exponential(5.0, 2000)
    lo, hi = bootstrap_mean_interval(errors)
    assert lo < errors.mean() < hi
    # the standard error of a mean of 2000 exponentials with scale 5 is 5 / sqrt(2000) = 0.11
    assert 0.3 < hi - lo < 0.6
    assert bootstrap_mean_interval(errors) == (lo, hi)  # seeded
    assert bootstrap_mean_interval(errors, seed=3) != (lo, hi)
    assert mae_interval([10, 20, 30], [10, 20, 30]) == (0.0, 0.0)
    assert all(math.isnan(v) for v in bootstrap_mean_interval([]))


def test_mcnemar_counts_discordant_faces_and_gives_the_exact_p():
    a = np.array([1] * 10 + [0] * 5 + [1] * 5, bool)   # ours: right on 15
    b = np.array([0] * 10 + [0] * 5 + [1] * 5, bool)   # reference: right on 5
    r = mcnemar(a, b)
    assert (r["only_a"], r["only_b"]) == (10, 0)
    assert r["p"] == pytest.approx(2 * 0.5 ** 10)
    assert r["acc_diff"] == pytest.approx(0.5)
    assert mcnemar(b, a)["acc_diff"] == pytest.approx(-0.5)
    even = mcnemar([1, 0, 1, 0], [0, 1, 0, 1])
    assert even["p"] == 1.0 and even["acc_diff"] == 0.0
    assert mcnemar([1, 1], [1, 1])["p"] == 1.0  # no discordant faces: no evidence either way


def test_mcnemar_p_for_thousands_of_faces_matches_the_binomial_tail():
    # 300 against 360 discordant faces: the two-sided tail of Binomial(660, 1/2) at 300
    a = np.r_[np.ones(300, bool), np.zeros(360, bool)]
    r = mcnemar(a, ~a)
    tail = sum(math.comb(660, i) for i in range(301)) / 2 ** 660
    assert r["p"] == pytest.approx(2 * tail, rel=1e-9)
    assert 0.01 < r["p"] < 0.05


def test_mcnemar_refuses_unpaired_results():
    with pytest.raises(ValueError, match="same items"):
        mcnemar([1, 0, 1], [1, 0])


def test_intervals_cover_every_headline_number():
    details = {
        "utkface": {"ages": np.array([20.0, 30, 40, 50]), "pred_age": np.array([22.0, 30, 35, 50]),
                    "genders": np.array([0, 1, 0, 1]), "pred_gender": np.array([0, 1, 1, 1])},
        "fer": {"fer2013": (np.array([0, 1, 2]), np.array([0, 1, 1])),
                "ferplus": (np.array([3, 3]), np.array([3, 3]))},
        "ck": {"ck": (np.array([0, 3]), np.array([0, 2]))},
    }
    ci = intervals(details)
    assert set(ci) == {"utkface", "fer2013", "ferplus", "ck"}
    assert set(ci["utkface"]) == {"age_mae", "gender_acc", "age_group_acc"}
    lo, hi = ci["utkface"]["age_mae"]
    assert lo <= 7 / 4 <= hi
    assert ci["fer2013"]["acc"] == pytest.approx(wilson_interval(2, 3), abs=1e-4)
    assert ci["ferplus"]["acc"][1] == 1.0
