"""Bradley-Terry ratings for the blind arena, as Chatbot Arena computes them (FastChat's
`compute_mle_elo`): a logistic regression on battles, scale 400, base 10, ties count half, with
bootstrap confidence intervals and the interval rank rule. Pure: numpy, scipy and scikit-learn.

A battle is `(model_a, model_b, winner)` with winner one of "model_a", "model_b", "tie",
"tie_bothbad" (a "both bad" vote is a tie for the ratings, as in FastChat).

Battles are counted per unordered pair and outcome, so a fit costs the same for ten battles or a
million, and a bootstrap round is a multinomial draw of those counts (the same as resampling the
battles with replacement).
"""

import math

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

WINNERS = ("model_a", "model_b", "tie", "tie_bothbad")

# FastChat fits without a penalty, on hundreds of thousands of battles. A team's board starts
# with a handful, where a model that won (or lost) every battle it played has an infinite
# maximum-likelihood rating (thousands of points in practice, far outside any sense). So the fit
# carries a weak Gaussian prior, an L2 penalty of C = 1: a standard deviation of one unit of
# log10 odds, i.e. 400 rating points around the mean. With a few thousand battles it moves a
# rating by well under a point (the simulation tests check recovery and coverage with it).
_C = 1.0
_TOL = 1e-8
_MAX_ITER = 1000
# Bootstrap rounds fitted together (a block-diagonal design): one solver call per chunk.
_CHUNK = 250


class _Counts:
    """Battle counts per unordered pair (i < j): wins of i, wins of j, ties."""

    def __init__(self, battles):
        names = set()
        for a, b, winner in battles:
            if winner not in WINNERS:
                raise ValueError(f"unknown winner {winner!r}")
            if a == b:
                raise ValueError(f"a model cannot battle itself: {a!r}")
            names.update((a, b))
        self.models = sorted(names)
        index = {m: k for k, m in enumerate(self.models)}
        cells: dict[tuple[int, int], list[int]] = {}
        for a, b, winner in battles:
            i, j = index[a], index[b]
            if winner == "model_a":
                outcome = 0 if i < j else 1
            elif winner == "model_b":
                outcome = 1 if i < j else 0
            else:
                outcome = 2
            cells.setdefault((min(i, j), max(i, j)), [0, 0, 0])[outcome] += 1
        self.pairs = np.array(sorted(cells), dtype=np.int64).reshape(-1, 2)
        self.counts = np.array([cells[tuple(p)] for p in self.pairs], dtype=np.float64).reshape(
            -1, 3
        )
        self.total = int(self.counts.sum())


def _fit(pairs, counts, n_models, *, base, rounds=1):
    """Fit `rounds` independent problems at once; counts has shape (rounds, pairs, 3).

    Per pair two rows with the same features (log(base) for i, -log(base) for j): "i beats j"
    weighted by i's wins plus half the ties, and "j beats i" weighted by j's wins plus half the
    ties. Returns the coefficients, shape (rounds, n_models), in units of log-base odds.
    """
    n_pairs = len(pairs)
    w_win = counts[:, :, 0] + 0.5 * counts[:, :, 2]
    w_loss = counts[:, :, 1] + 0.5 * counts[:, :, 2]
    # Rows: round r, pair p, label (1 then 0). Columns: round r's block of n_models.
    r = np.repeat(np.arange(rounds), n_pairs * 2)
    p = np.tile(np.repeat(np.arange(n_pairs), 2), rounds)
    row = np.arange(rounds * n_pairs * 2)
    cols_i = r * n_models + pairs[p, 0]
    cols_j = r * n_models + pairs[p, 1]
    log_base = math.log(base)
    x = sparse.csr_matrix(
        (
            np.concatenate([np.full(row.size, log_base), np.full(row.size, -log_base)]),
            (np.concatenate([row, row]), np.concatenate([cols_i, cols_j])),
        ),
        shape=(row.size, rounds * n_models),
    )
    y = np.tile(np.array([1, 0]), rounds * n_pairs)
    weight = np.stack([w_win, w_loss], axis=2).reshape(-1)
    keep = weight > 0
    if len(np.unique(y[keep])) < 2:
        # Every battle went one way in every round of this chunk: keep the empty rows so the
        # solver sees both labels (they weigh nothing).
        keep = np.ones_like(keep)
    # The objective is a sum over rows plus a sum of squared coefficients, so independent rounds
    # stacked block-diagonally fit exactly as if fitted one by one, in one solver call.
    # newton-cg: a few Hessian-vector steps solve the block-diagonal problem in milliseconds,
    # ten times faster than lbfgs here, to the same answer.
    model = LogisticRegression(
        fit_intercept=False, C=_C, solver="newton-cg", tol=_TOL, max_iter=_MAX_ITER
    )
    model.fit(x[keep], y[keep], sample_weight=weight[keep])
    return model.coef_[0].reshape(rounds, n_models)


def _to_scale(coef, *, scale, init):
    # Bradley-Terry fixes differences only: anchor the mean at `init` (FastChat anchors one
    # named model instead, which a team's board may not have).
    ratings = scale * coef
    return ratings - ratings.mean(axis=-1, keepdims=True) + init


def fit_bradley_terry(battles, *, scale=400, base=10, init=1000) -> dict[str, float]:
    """The maximum-likelihood ratings, mean `init`; {} for no battles."""
    c = _Counts(battles)
    if not c.total:
        return {}
    coef = _fit(c.pairs, c.counts[None], len(c.models), base=base)
    ratings = _to_scale(coef, scale=scale, init=init)[0]
    return {m: float(v) for m, v in zip(c.models, ratings, strict=True)}


def bootstrap_ratings(battles, *, rounds=1000, seed=None, scale=400, base=10, init=1000):
    """(models, array of shape (rounds, models)): the fit on `rounds` resamples of the battles."""
    c = _Counts(battles)
    if not c.total:
        return [], np.zeros((rounds, 0))
    rng = np.random.default_rng(seed)
    p = (c.counts / c.total).reshape(-1)
    out = []
    for start in range(0, rounds, _CHUNK):
        k = min(_CHUNK, rounds - start)
        draws = rng.multinomial(c.total, p, size=k).reshape(k, len(c.pairs), 3)
        coef = _fit(c.pairs, draws.astype(np.float64), len(c.models), base=base, rounds=k)
        out.append(_to_scale(coef, scale=scale, init=init))
    return c.models, np.concatenate(out)


def bootstrap_intervals(
    battles, *, rounds=1000, seed=None, scale=400, base=10, init=1000
) -> dict[str, tuple[float, float, float]]:
    """{model: (low, median, high)}: the 2.5th, 50th and 97.5th percentiles over the rounds."""
    models, samples = bootstrap_ratings(
        battles, rounds=rounds, seed=seed, scale=scale, base=base, init=init
    )
    if not models:
        return {}
    low, mid, high = np.percentile(samples, [2.5, 50, 97.5], axis=0)
    return {m: (float(low[k]), float(mid[k]), float(high[k])) for k, m in enumerate(models)}


def ranks_by_interval(intervals) -> dict[str, int]:
    """Chatbot Arena's rule: 1 + the number of models whose lower bound is above this model's
    upper bound (models whose intervals overlap share a rank)."""
    lows = np.array([iv[0] for iv in intervals.values()])
    return {m: 1 + int((lows > iv[-1]).sum()) for m, iv in intervals.items()}


def win_rate_matrix(battles) -> dict:
    """{"models": [...], "win_rate": rows}: row model's share of wins against the column model
    (ties count half); None on the diagonal and for pairs that never met."""
    c = _Counts(battles)
    n = len(c.models)
    rate: list[list[float | None]] = [[None] * n for _ in range(n)]
    for (i, j), (win_i, win_j, ties) in zip(c.pairs, c.counts, strict=True):
        played = win_i + win_j + ties
        rate[i][j] = float((win_i + 0.5 * ties) / played)
        rate[j][i] = float((win_j + 0.5 * ties) / played)
    return {"models": c.models, "win_rate": rate}


def pair_to_show_next(intervals, battle_counts, available_models, n, rng) -> list[str]:
    """Active sampling (Chatbot Arena paper, section 5): show the models whose ratings are least
    certain, against partners a battle would tell the most about.

    intervals: {model: (low, median, high)} from the last fit; battle_counts: {(model, model):
    battles} keyed by the sorted pair; rng: a numpy Generator. Returns `n` distinct models from
    `available_models`, the widest interval first. A model without an interval (never rated)
    counts as the widest of all. The partners are drawn at random (so the same few pairs do not
    repeat), weighted like the paper's rule: by the pair's uncertainty shrinking with one more
    battle, sqrt(v / m) - sqrt(v / (m + 1)) where v is the sum of the two squared interval
    widths and m the pair's battles so far; a partner whose interval overlaps the first model's
    counts fully, one clearly apart counts a quarter (that battle would not change the ranks).
    """
    candidates = sorted(set(available_models))
    if n > len(candidates):
        raise ValueError(f"{n} models asked, {len(candidates)} available")
    widths = {m: iv[-1] - iv[0] for m, iv in intervals.items() if m in candidates}
    unknown = 2 * max(widths.values(), default=400.0)
    width = {m: max(widths.get(m, unknown), 1e-9) for m in candidates}
    # The widest first; ties (e.g. several unrated models) broken at random.
    top = max(width.values())
    first = str(rng.choice([m for m in candidates if width[m] == top]))
    chosen = [first]
    rest = [m for m in candidates if m != first]
    lo, hi = (intervals[first][0], intervals[first][-1]) if first in intervals else (None, None)
    weights = []
    for m in rest:
        v = width[first] ** 2 + width[m] ** 2
        played = battle_counts.get(tuple(sorted((first, m))), 0)
        gain = math.sqrt(v) if played == 0 else math.sqrt(v / played) - math.sqrt(v / (played + 1))
        apart = (
            lo is not None and m in intervals and (intervals[m][0] > hi or intervals[m][-1] < lo)
        )
        weights.append(gain * (0.25 if apart else 1.0))
    if n > 1:
        w = np.array(weights)
        picked = rng.choice(len(rest), size=n - 1, replace=False, p=w / w.sum())
        chosen += [rest[k] for k in picked]
    return chosen
