"""Bootstrap over a benchmark's unit of sampling: confidence intervals and paired tests.

    from lntune.eval.bootstrap import bootstrap_samples, interval_tree, paired_difference
    samples = bootstrap_samples([statistic], strata, n_resamples=1000, seed=0)[0]
    ci95 = interval_tree(samples, point_result)           # {"accuracy": [lo, hi], ...}

A *statistic* is a function of resampling weights: given a (resamples x units) matrix whose row says how
many times each unit (question, image, image pair) was drawn, it returns a tree (nested dicts) of arrays
with one value per resample, mirroring the metric dict of a scorer. A row of ones gives the metric itself.
Resamples draw with replacement as many units as there are, within each stratum (a POPE split, an MME
subtask) separately, so a stratum's size never changes. Resamples are generated in chunks sized to keep
memory bounded, from `numpy.random.default_rng(seed)`: the same data and seed give the same intervals.

Intervals are percentile intervals (2.5th and 97.5th percentiles of the resampled values), widened where
needed to contain the reported point estimate (possible for skewed metrics on a handful of units). A paired
comparison applies the same resamples to two systems' units and reads the interval and a two-sided p-value
off the resampled differences. lntune/eval/intervals.py and lntune/eval/compare.py apply this to the
benchmarks; the functions here know nothing about them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
# Weight cells (resamples x units, or x the statistic's own entries) held at once; about 32 MB of float64.
MAX_CELLS = 4_000_000

Statistic = Callable[[np.ndarray], dict]


def resample_weights(strata, n_resamples: int, seed: int = DEFAULT_SEED, cost: int = 0):
    """Yield (chunk x units) arrays of draw counts, `n_resamples` rows in all.

    strata: one label per unit (units with the same label are resampled together), or an int, the
    number of units, for one stratum. cost: cells the caller's statistic touches per resample, to size
    the chunks.
    """
    labels = np.zeros(strata, dtype=int) if isinstance(strata, (int, np.integer)) else np.asarray(strata)
    n = len(labels)
    if n == 0:
        raise ValueError("nothing to resample: no units")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    groups = [np.flatnonzero(inverse == g) for g in np.argsort(first)]  # strata in order of appearance
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, MAX_CELLS // max(n, cost, 1)))
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        weights = np.zeros((rows, n))
        for members in groups:
            m = len(members)
            draws = rng.integers(0, m, size=(rows, m)) + (np.arange(rows) * m)[:, None]
            weights[:, members] = np.bincount(draws.ravel(), minlength=rows * m).reshape(rows, m)
        yield weights


def bootstrap_samples(statistics: list[Statistic], strata, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = DEFAULT_SEED, cost: int = 0) -> list[dict]:
    """One tree of (n_resamples,) arrays per statistic, all evaluated on the same resamples."""
    if n_resamples < 1:
        raise ValueError(f"the bootstrap needs at least 1 resample, got {n_resamples}")
    chunks = [[] for _ in statistics]
    for weights in resample_weights(strata, n_resamples, seed, cost):
        for out, statistic in zip(chunks, statistics):
            out.append(statistic(weights))
    return [_concatenate(parts) for parts in chunks]


def _concatenate(trees: list):
    if isinstance(trees[0], dict):
        return {key: _concatenate([t[key] for t in trees]) for key in trees[0]}
    return np.concatenate(trees)


def percentile_interval(samples: np.ndarray, point: float | None = None,
                        confidence: float = CONFIDENCE) -> list[float] | None:
    """[low, high]: the central `confidence` share of the finite resampled values, widened to hold `point`.

    None when no resample gave a value (a group never drawn, e.g.).
    """
    finite = np.asarray(samples, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
    if point is not None:
        low, high = min(low, float(point)), max(high, float(point))
    return [low, high]


def interval_tree(samples: dict, points: dict) -> dict:
    """[low, high] for every leaf of `samples` that `points` (the scorer's result) also has."""
    out = {}
    for key, value in samples.items():
        if key not in points:
            continue
        if isinstance(value, dict):
            out[key] = interval_tree(value, points[key])
        else:
            out[key] = percentile_interval(value, points[key])
    return out


def paired_difference(samples_a: np.ndarray, samples_b: np.ndarray, a: float, b: float,
                      confidence: float = CONFIDENCE) -> dict:
    """{"a", "b", "difference": b - a, "ci95", "p_value"} from two systems' values on the same resamples.

    The p-value is two-sided: twice the smaller share of resampled differences on either side of zero
    (ties count on both sides), with the usual +1 correction so it is never 0; identical systems give 1.
    """
    diffs = np.asarray(samples_b, dtype=float) - np.asarray(samples_a, dtype=float)
    diffs = diffs[np.isfinite(diffs)]
    difference = float(b) - float(a)
    below, above = int(np.sum(diffs <= 0)), int(np.sum(diffs >= 0))
    p_value = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1))
    return {"a": float(a), "b": float(b), "difference": difference,
            "ci95": percentile_interval(diffs, difference, confidence), "p_value": p_value}


class SparseRows:
    """A (rows x columns) sparse matrix kept as entries sorted by row, for products with dense matrices.

    `apply(dense)` gives out[b, r] = sum of dense[b, column] * value over row r's entries, for a (B x
    columns) `dense`: the weighted sums every resampled statistic is made of, without scipy.
    """

    def __init__(self, rows, columns, values, n_rows: int):
        rows, columns, values = (np.asarray(a) for a in (rows, columns, values))
        order = np.argsort(rows, kind="stable")
        self.rows, self.columns = rows[order].astype(np.int64), columns[order].astype(np.int64)
        self.values = values[order].astype(float)
        self.n_rows = n_rows
        if len(self.rows):
            self.starts = np.flatnonzero(np.r_[True, self.rows[1:] != self.rows[:-1]])
        else:
            self.starts = np.zeros(0, dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.rows)

    def apply(self, dense: np.ndarray) -> np.ndarray:
        out = np.zeros((dense.shape[0], self.n_rows))
        if len(self.rows):
            products = dense[:, self.columns] * self.values
            out[:, self.rows[self.starts]] = np.add.reduceat(products, self.starts, axis=1)
        return out
