"""Two-level bootstrap of a reproduction's scores: seeds and questions resampled together, paired across models.

    from lntune.reproduce.resampled import resampled_scores, seed_resampled
    draws = resampled_scores({"layernorm": [eval_dir_seed0, eval_dir_seed1, ...], "finetune": [...]})
    draws["layernorm"]["pope"]          # (1000,) resampled values of the model's mean POPE accuracy over seeds

A model is a list of `lntune eval` folders, one per training seed. Each resample draws the benchmark's units
(questions; MME image pairs; caption images) with replacement, within the strata the benchmark's interval uses
(lntune/eval/intervals.py), and draws as many seeds as the model has, with replacement; the model's value is
the mean over the drawn seeds of the metric on the drawn units. Every model and seed sees the same drawn
units (the same question indices: a paired design), and models with the same number of seeds the same drawn
seed positions, so a difference between two models computed resample by resample is the paired two-level
bootstrap of that difference. Captions recompute CIDEr on every resample (lntune/eval/resampled_captions.py).

The scores are those the verdict rules read (lntune.reproduce.verdicts.scores): "mme" (perception +
cognition), "vqav2" (accuracy), "coco" and "flickr30k" (CIDEr), "pope" (mean accuracy over the splits).
`seed_resampled` is the seed level alone, for per-seed measurements without units (layer similarity).
Seeded: the same folders and seed give the same draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lntune.eval.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_samples

# lntune eval's task -> how the verdicts' score is read off the benchmark statistic's tree.
SCORE_OF = {
    "mme": lambda tree: tree["perception"] + tree["cognition"],
    "vqav2": lambda tree: tree["accuracy"],
    "coco": lambda tree: tree["CIDEr"],
    "flickr30k": lambda tree: tree["CIDEr"],
    "pope": lambda tree: tree["mean_accuracy"],
}


def seed_draws(n_seeds: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples x n_seeds) seed positions drawn with replacement; the same for every model of that many seeds."""
    return np.random.default_rng([seed, n_seeds]).integers(0, n_seeds, size=(n_resamples, n_seeds))


def mean_over_drawn_seeds(values: np.ndarray, seed: int) -> np.ndarray:
    """values: (n_resamples x n_seeds), one column per seed -> (n_resamples,) means over the drawn seeds."""
    draws = seed_draws(values.shape[1], values.shape[0], seed)
    return np.take_along_axis(values, draws, axis=1).mean(axis=1)


def seed_resampled(per_seed: list[float], n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_resamples,) means over seeds drawn with replacement, for one number per seed."""
    values = np.tile(np.asarray(per_seed, dtype=float), (n_resamples, 1))
    return mean_over_drawn_seeds(values, seed)


def resampled_scores(models: dict[str, list[Path]], n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     tasks=tuple(SCORE_OF)) -> dict[str, dict[str, np.ndarray]]:
    """{model: {score: (n_resamples,) array}} for every task all of a model's folders evaluated."""
    from lntune.eval.compare import align_units
    from lntune.eval.intervals import benchmark, read_units, units_path

    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in models}
    for task in tasks:
        evaluated = {name: dirs for name, dirs in models.items()
                     if dirs and all(units_path(d, task).is_file() for d in dirs)}
        if not evaluated:
            continue
        records = {name: [read_units(units_path(d, task)) for d in dirs] for name, dirs in evaluated.items()}
        bench_name, reference = next(iter(records.values()))[0]
        spec = benchmark(bench_name)
        statistics, columns = [], []
        for name, runs in records.items():
            for i, (_, units) in enumerate(runs):
                units = align_units(reference, units, f"{task} of {name} ({evaluated[name][i]})")
                statistics.append(spec.statistic(units))
                columns.append(name)
        samples = bootstrap_samples(statistics, spec.strata(reference), n_resamples, seed,
                                    cost=max(getattr(s, "cost", 0) for s in statistics))
        for name in evaluated:
            per_seed = np.stack([SCORE_OF[task](tree) for tree, owner in zip(samples, columns) if owner == name], axis=1)
            out[name][task] = mean_over_drawn_seeds(per_seed, seed)
    return out
