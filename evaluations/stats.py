"""Statistics for evaluation results: bootstrap intervals over items, the paired comparison of two
models, latency percentiles, and folding trials. Pure numpy; no Django.

The unit of resampling is the dataset item: with several trials, fold each item's trials first
(`fold_trials`) and pass the per-item means, so an interval reflects how many items were scored,
not how many calls were made.

Too little data: with no values there is no mean (None); with one value there is a mean but no
interval (low and high are None, never low = high = mean, which would claim certainty). A
constant sample (e.g. every item passed) gets a zero-width interval: the percentile bootstrap says
what the data says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# Rows of resampled indices held at once: bounds memory (8 bytes each) for large datasets while
# keeping each numpy call large enough to be fast.
_CHUNK_ELEMENTS = 2_000_000


class Interval(NamedTuple):
    mean: float | None
    low: float | None
    high: float | None


class PairedResult(NamedTuple):
    mean_diff: float | None  # mean of a - b over the items
    low: float | None
    high: float | None
    verdict: str  # "better" / "worse" (a against b) / "no clear difference"
    n: int


BETTER, WORSE, NO_CLEAR_DIFFERENCE = "better", "worse", "no clear difference"


def _as_array(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers (no NaN or infinity)")
    return array


def _check(confidence: float, rounds: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    if rounds < 1:
        raise ValueError("rounds must be at least 1")


def _bootstrap_means(values: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    n = values.size
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(rounds)
    for start in range(0, rounds, per_chunk):
        stop = min(rounds, start + per_chunk)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[indices].mean(axis=1)
    return means


def _percentile_interval(
    values: np.ndarray, confidence: float, rounds: int, seed: int | np.random.Generator | None
) -> Interval:
    mean = float(values.mean())
    means = _bootstrap_means(values, rounds, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    # Rounding in the means of a constant sample can put the mean a hair outside its interval.
    return Interval(mean, float(min(low, mean)), float(max(high, mean)))


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    rounds: int = 2000,
    seed: int | np.random.Generator | None = None,
) -> Interval:
    """The mean and its percentile-bootstrap interval, resampling items with replacement.

    n = 0: (None, None, None). n = 1: (value, None, None)."""
    _check(confidence, rounds)
    array = _as_array(values)
    if array.size == 0:
        return Interval(None, None, None)
    if array.size == 1:
        return Interval(float(array[0]), None, None)
    return _percentile_interval(array, confidence, rounds, seed)


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    rounds: int = 2000,
    seed: int | np.random.Generator | None = None,
    higher_is_better: bool = True,
) -> PairedResult:
    """Is model a better than model b on the same items? a[i] and b[i] are the two models'
    scores on item i. The paired bootstrap resamples items (keeping each pair together), so
    what the items share (hard items are hard for both) cancels out.

    verdict: "better" or "worse" (a against b) when the interval of mean(a - b) excludes 0,
    else "no clear difference". For a metric where lower is better (latency, cost), pass
    higher_is_better=False. Fewer than two items: no interval, "no clear difference"."""
    _check(confidence, rounds)
    first, second = _as_array(a, "a"), _as_array(b, "b")
    if first.size != second.size:
        raise ValueError(f"a and b must score the same items ({first.size} != {second.size})")
    differences = first - second
    if differences.size == 0:
        return PairedResult(None, None, None, NO_CLEAR_DIFFERENCE, 0)
    if differences.size == 1:
        return PairedResult(float(differences[0]), None, None, NO_CLEAR_DIFFERENCE, 1)
    mean, low, high = _percentile_interval(differences, confidence, rounds, seed)
    if low > 0:
        verdict = BETTER if higher_is_better else WORSE
    elif high < 0:
        verdict = WORSE if higher_is_better else BETTER
    else:
        verdict = NO_CLEAR_DIFFERENCE
    return PairedResult(mean, low, high, verdict, int(differences.size))


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-th percentile (q in 0..100, linear interpolation as numpy), e.g. p50 and p95
    latency. None for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be between 0 and 100")
    array = _as_array(values)
    if array.size == 0:
        return None
    return float(np.percentile(array, q))


def fold_trials(
    values_per_trial: Sequence[float] | np.ndarray,
) -> tuple[float | None, float | None]:
    """One item's trials folded into (mean, spread). The spread is the standard deviation of the
    trials observed (ddof 0: it describes them; it is not an estimate), so one trial has spread
    0.0. No trials: (None, None)."""
    array = _as_array(values_per_trial, "values_per_trial")
    if array.size == 0:
        return None, None
    return float(array.mean()), float(array.std())
