"""Evaluation statistics, tested against simulation: data drawn with a known mean or a known
difference, many times over (fixed seeds: deterministic, but a wrong interval fails)."""

import time
import warnings
from statistics import NormalDist

import numpy as np
import pytest

from evaluations.stats import (
    Interval,
    PairedResult,
    fold_trials,
    mean_ci,
    paired_difference,
    percentile,
)


def correlated_models(rng, p_a, p_b, *, n, repetitions, rho=0.5):
    """Pass/fail of two models on the same items: item difficulty shared (correlation rho of the
    latent scores), each model's own noise. The marginal pass rates are exactly p_a and p_b."""
    difficulty = rng.standard_normal((repetitions, n))

    def model(p):
        latent = np.sqrt(rho) * difficulty + np.sqrt(1 - rho) * rng.standard_normal(
            (repetitions, n)
        )
        return (latent < NormalDist().inv_cdf(p)).astype(float)

    return model(p_a), model(p_b)


# --- Simulation -----------------------------------------------------------------------------------


def test_the_95_percent_interval_covers_the_true_mean_in_about_95_percent_of_repetitions():
    rng = np.random.default_rng(20261130)
    repetitions, true_mean = 400, 0.7
    samples = (rng.random((repetitions, 100)) < true_mean).astype(float)
    covered = 0
    for sample in samples:
        _, low, high = mean_ci(sample, rounds=500, seed=rng)
        covered += low <= true_mean <= high
    assert 0.92 <= covered / repetitions <= 0.98, covered / repetitions


def test_a_90_percent_interval_covers_less_often():
    # The confidence level is honoured, not ignored: at 90% coverage drops to about 90%.
    rng = np.random.default_rng(7)
    repetitions, true_mean = 400, 0.7
    samples = (rng.random((repetitions, 100)) < true_mean).astype(float)
    covered = sum(
        low <= true_mean <= high
        for _, low, high in (mean_ci(s, confidence=0.9, rounds=500, seed=rng) for s in samples)
    )
    assert 0.86 <= covered / repetitions <= 0.94, covered / repetitions


def test_the_paired_interval_covers_a_known_difference():
    rng = np.random.default_rng(11)
    a, b = correlated_models(rng, 0.75, 0.6, n=200, repetitions=300)
    covered = 0
    for first, second in zip(a, b, strict=True):
        result = paired_difference(first, second, rounds=500, seed=rng)
        covered += result.low <= 0.15 <= result.high
    assert 0.92 <= covered / 300 <= 0.98, covered / 300


def test_the_paired_test_finds_a_real_difference():
    rng = np.random.default_rng(12)
    strong, weak = correlated_models(rng, 0.75, 0.6, n=200, repetitions=300)
    verdicts = [
        paired_difference(a, b, rounds=500, seed=rng).verdict
        for a, b in zip(strong, weak, strict=True)
    ]
    assert verdicts.count("better") / len(verdicts) >= 0.8, verdicts.count("better")
    assert verdicts.count("worse") == 0
    reversed_verdicts = [
        paired_difference(b, a, rounds=500, seed=rng).verdict
        for a, b in zip(strong[:50], weak[:50], strict=True)
    ]
    assert reversed_verdicts.count("worse") >= 40


def test_the_paired_test_does_not_invent_a_difference():
    rng = np.random.default_rng(13)
    a, b = correlated_models(rng, 0.7, 0.7, n=200, repetitions=300)
    verdicts = [
        paired_difference(x, y, rounds=500, seed=rng).verdict for x, y in zip(a, b, strict=True)
    ]
    assert verdicts.count("no clear difference") / len(verdicts) >= 0.9


def test_pairing_uses_the_shared_difficulty():
    # Strongly correlated models (hard items are hard for both): the paired test sees a 10-point
    # difference almost every time, where the two models' own intervals seldom separate.
    rng = np.random.default_rng(14)
    a, b = correlated_models(rng, 0.7, 0.6, n=200, repetitions=100, rho=0.95)
    paired_better = separated = 0
    for first, second in zip(a, b, strict=True):
        paired_better += paired_difference(first, second, rounds=500, seed=rng).verdict == "better"
        separated += (
            mean_ci(first, rounds=500, seed=rng).low > mean_ci(second, rounds=500, seed=rng).high
        )
    assert paired_better >= 90, paired_better
    assert separated <= 40, separated


# --- Exact behaviour ------------------------------------------------------------------------------


def test_mean_ci_width_matches_the_normal_approximation():
    values = np.array([1.0] * 70 + [0.0] * 30)
    mean, low, high = mean_ci(values, rounds=4000, seed=3)
    assert mean == pytest.approx(0.7)
    half_width = 1.96 * np.sqrt(0.7 * 0.3 / 100)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert low < mean < high


def test_same_seed_same_interval_and_lists_work():
    assert mean_ci([0.1, 0.5, 0.9, 0.4], seed=5) == mean_ci(np.array([0.1, 0.5, 0.9, 0.4]), seed=5)
    assert isinstance(mean_ci([0.0, 1.0], seed=5), Interval)


def test_large_datasets_are_resampled_in_chunks():
    rng = np.random.default_rng(4)
    values = rng.random(30_000)
    mean, low, high = mean_ci(values, rounds=300, seed=4)
    stderr = values.std() / np.sqrt(values.size)
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(1.96 * stderr, rel=0.2)


def test_constant_values_give_a_zero_width_interval():
    assert mean_ci([1.0] * 20, seed=0) == Interval(1.0, 1.0, 1.0)
    same = paired_difference([1, 0, 1], [1, 0, 1], seed=0)
    assert same == PairedResult(0.0, 0.0, 0.0, "no clear difference", 3)


def test_too_little_data_has_no_interval_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_ci([]) == Interval(None, None, None)
        assert mean_ci([0.25]) == Interval(0.25, None, None)
        assert paired_difference([], []) == PairedResult(None, None, None, "no clear difference", 0)
        assert paired_difference([1.0], [0.0]) == PairedResult(
            1.0, None, None, "no clear difference", 1
        )
        assert percentile([], 50) is None
        assert percentile([120], 95) == 120.0
        assert fold_trials([]) == (None, None)
        assert fold_trials([0.5]) == (0.5, 0.0)


def test_lower_is_better_flips_the_verdict():
    fast = [100.0, 120.0, 90.0, 110.0, 105.0, 95.0]
    slow = [200.0, 230.0, 180.0, 210.0, 190.0, 205.0]
    assert paired_difference(fast, slow, seed=0).verdict == "worse"
    result = paired_difference(fast, slow, seed=0, higher_is_better=False)
    assert result.verdict == "better"
    assert result.mean_diff == pytest.approx(-595 / 6)
    assert result.high < 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1, 0], [1])
    with pytest.raises(ValueError, match="finite"):
        mean_ci([0.5, float("nan")])
    with pytest.raises(ValueError, match="flat"):
        mean_ci([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1, 0], confidence=95)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1, 2], 0.95 * 1000)


def test_percentile():
    latencies = list(range(1, 101))  # 1..100 ms
    assert percentile(latencies, 50) == pytest.approx(50.5)
    assert percentile(latencies, 95) == pytest.approx(95.05)
    assert percentile(latencies, 0) == 1 and percentile(latencies, 100) == 100


def test_fold_trials():
    mean, spread = fold_trials([1.0, 1.0, 0.0])
    assert mean == pytest.approx(2 / 3)
    assert spread == pytest.approx(np.sqrt(2 / 9))
    assert fold_trials([0.8, 0.8]) == (0.8, 0.0)


def test_2000_rounds_over_1000_items_is_fast():
    values = np.random.default_rng(0).random(1000)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        mean_ci(values, rounds=2000, seed=0)
        paired_difference(values, values[::-1], rounds=2000, seed=0)
        timings.append((time.perf_counter() - start) / 2)
    assert min(timings) < 0.1, timings
