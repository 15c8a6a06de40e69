"""95% bootstrap intervals for the scorers' metrics, and the per-unit records `lntune eval` keeps.

    from lntune.eval.intervals import score_units
    result = score_units("pope", pope_units(labels_dir, predictions), bootstrap=1000, seed=0)
    result["ci95"]["random"]["accuracy"]          # [low, high], same scale as result["random"]["accuracy"]

Every scorer works in two steps: per-unit records (`vqav2_units`, `pope_units`, `mme_units`,
`caption_units` in lntune.eval.metrics) and the official summary of those records. `score_units` runs the
summary and, with bootstrap > 0, adds "ci95": the tree of the result's metrics with a [low, high]
percentile interval each (lntune/eval/bootstrap.py), resampling the benchmark's unit as
lntune/eval/resampled_scores.py and resampled_captions.py describe.

`lntune eval` writes each task's records to <out>/units/<task>.json ({"benchmark", "unit", "records"}), so
`lntune compare` (lntune/eval/compare.py) can resample two evaluations together without the benchmark
files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lntune.errors import LntuneError
from lntune.eval import resampled_scores as rs
from lntune.eval.bootstrap import DEFAULT_SEED, bootstrap_samples, interval_tree
from lntune.jsonio import load_json

UNITS_DIR = "units"


@dataclass(frozen=True)
class Benchmark:
    unit: str  # what one record is, and what the bootstrap draws
    summary: Callable[..., dict]  # records -> the scorer's result dict
    statistic: Callable  # records -> (weights -> tree of arrays)
    strata: Callable  # records -> stratum labels (or the number of records: one stratum)


def _benchmarks() -> dict[str, Benchmark]:
    from lntune.eval.metrics.caption import summarize_captions
    from lntune.eval.metrics.mme import summarize_mme
    from lntune.eval.metrics.pope import summarize_pope
    from lntune.eval.metrics.vqav2 import summarize_vqav2
    from lntune.eval.resampled_captions import caption_statistic

    return {
        "vqav2": Benchmark("question", summarize_vqav2, rs.vqav2_statistic, rs.vqav2_strata),
        "pope": Benchmark("question", summarize_pope, rs.pope_statistic, rs.pope_strata),
        "mme": Benchmark("image (two questions)", summarize_mme, rs.mme_statistic, rs.mme_strata),
        "caption": Benchmark("image", summarize_captions, caption_statistic, len),
    }


# lntune eval's task names -> the benchmark scoring them.
TASK_BENCHMARKS = {"mme": "mme", "vqav2": "vqav2", "coco": "caption", "flickr30k": "caption", "pope": "pope"}


def benchmark(name: str) -> Benchmark:
    benchmarks = _benchmarks()
    if name not in benchmarks:
        raise LntuneError(f"unknown benchmark {name!r}; choose from: {', '.join(benchmarks)}")
    return benchmarks[name]


def score_units(name: str, units: list[dict], bootstrap: int = 0, seed: int = DEFAULT_SEED, **summary_kwargs) -> dict:
    """The official result of `units`, with "ci95" from `bootstrap` resamples when bootstrap > 0."""
    if bootstrap < 0:
        raise LntuneError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {bootstrap}")
    result = benchmark(name).summary(units, **summary_kwargs)
    if bootstrap:
        result["ci95"] = metric_intervals(name, units, result, bootstrap, seed)
    return result


def metric_intervals(name: str, units: list[dict], result: dict, n_resamples: int, seed: int = DEFAULT_SEED) -> dict:
    """The "ci95" tree of `result` (the official summary of `units`)."""
    spec = benchmark(name)
    statistic = spec.statistic(units)
    samples = bootstrap_samples([statistic], spec.strata(units), n_resamples, seed,
                                cost=getattr(statistic, "cost", 0))[0]
    return interval_tree(samples, result)


def units_path(eval_dir, task: str) -> Path:
    """Where `lntune eval` keeps a task's per-unit records: <eval_dir>/units/<task>.json."""
    return Path(eval_dir) / UNITS_DIR / f"{task}.json"


def write_units(path, name: str, units: list[dict]) -> Path:
    from lntune.eval.tasks.base import write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_json(Path(path), {"benchmark": name, "unit": benchmark(name).unit, "records": units})


def read_units(path) -> tuple[str, list[dict]]:
    """(benchmark name, records) of a file `write_units` wrote."""
    path = Path(path)
    if not path.is_file():
        raise LntuneError(f"{path}: not found; re-run the same `lntune eval` command (it re-scores the saved "
                          "answers without generating) to write it")
    data = load_json(path, "per-unit records ({'benchmark', 'unit', 'records'})")
    if not isinstance(data, dict) or not isinstance(data.get("records"), list) or data.get("benchmark") not in _benchmarks():
        raise LntuneError(f"{path}: expected {{'benchmark': one of {', '.join(_benchmarks())}, 'records': [...]}}")
    return data["benchmark"], data["records"]
