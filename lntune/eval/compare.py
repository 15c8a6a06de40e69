"""Paired comparison of two evaluations on the same questions: difference, 95% interval, p-value.

    lntune compare EVAL_DIR_A EVAL_DIR_B [--json] [--bootstrap 1000] [--seed 0]

    from lntune.eval.compare import compare_eval_dirs, compare_units
    result = compare_eval_dirs("runs/stage1/eval", "runs/ln/eval")
    result["pope"]["mean_accuracy"]   # {"a", "b", "difference": b - a, "ci95": [lo, hi], "p_value"}

For every task both folders evaluated (their metrics.json), each headline metric is compared with a paired
bootstrap: the same resamples of the benchmark's units (units/<task>.json, written by `lntune eval`) are
scored for both evaluations, so question difficulty cancels out of the difference and the interval is far
narrower than two separate intervals would suggest. Evaluations of different question sets (another
--limit, another data root) are refused: a paired difference means nothing there; so is a folder whose
metrics.json does not agree with its units/ (one of them edited after the evaluation).

`compare_units` is the same test on records in memory, for code that holds them (several seeds, e.g.).
"""

from __future__ import annotations

from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_samples, paired_difference
from lntune.eval.intervals import TASK_BENCHMARKS, benchmark, read_units, units_path
from lntune.eval.scores import HEADLINE_SOURCES
from lntune.jsonio import first_few, load_json


def _headline_metrics() -> dict[str, tuple[str, ...]]:
    """The headline metrics per benchmark (both caption sets share "caption"), as named in the scorers' results."""
    per_benchmark: dict[str, tuple[str, ...]] = {}
    for task, metric in HEADLINE_SOURCES.values():
        known = per_benchmark.get(TASK_BENCHMARKS[task], ())
        per_benchmark[TASK_BENCHMARKS[task]] = known if metric in known else known + (metric,)
    return per_benchmark


# The metrics compared per benchmark: the headline numbers of eval/scores.py, grouped by benchmark.
HEADLINE_METRICS = _headline_metrics()


def compare_units(name: str, units_a: list[dict], units_b: list[dict], metrics: tuple[str, ...] | None = None,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, points=None,
                  label: str = "") -> dict:
    """{metric: paired_difference(...)} of B against A on benchmark `name`'s records.

    points: the (result_a, result_b) the differences are reported for (default: the official summaries of
    the records). MME cognition is left out when neither side has a cognition subtask.
    """
    if n_resamples < 1:
        raise LntuneError(f"a paired comparison needs at least 1 resample, got {n_resamples}")
    spec = benchmark(name)
    units_b = align_units(units_a, units_b, label or name)
    result_a, result_b = points or (spec.summary(units_a), spec.summary(units_b))
    names = [m for m in (metrics or HEADLINE_METRICS[name]) if _applies(name, m, units_a)]
    stat_a, stat_b = spec.statistic(units_a), spec.statistic(units_b)
    samples_a, samples_b = bootstrap_samples([stat_a, stat_b], spec.strata(units_a), n_resamples, seed,
                                             cost=getattr(stat_a, "cost", 0) + getattr(stat_b, "cost", 0))
    return {m: paired_difference(samples_a[m], samples_b[m], result_a[m], result_b[m]) for m in names}


def _applies(name: str, metric: str, units: list[dict]) -> bool:
    if name == "mme" and metric == "cognition":
        from lntune.eval.metrics.mme import COGNITION

        return any(u["subtask"] in COGNITION for u in units)
    return True


def align_units(units_a: list[dict], units_b: list[dict], label: str) -> list[dict]:
    """B's records in A's order; a clear error when the two do not cover the same questions."""
    keys_a = [_key(u) for u in units_a]
    set_a = set(keys_a)
    by_key_b = {_key(u): u for u in units_b}
    only_a = [k for k in keys_a if k not in by_key_b]
    only_b = [k for k in by_key_b if k not in set_a]
    if only_a or only_b or len(by_key_b) != len(units_b) or len(set_a) != len(keys_a):
        raise LntuneError(f"{label}: the two evaluations scored different questions ({len(only_a)} only in A, "
                          f"first: {first_few(only_a) if only_a else '-'}; {len(only_b)} only in B, first: "
                          f"{first_few(only_b) if only_b else '-'}); a paired comparison needs the same ones")
    aligned = [by_key_b[k] for k in keys_a]
    for a, b in zip(units_a, aligned):
        if a.get("label") != b.get("label") or a.get("references") != b.get("references"):
            raise LntuneError(f"{label}: question {_key(a)} has other labels or references in A and B; "
                              "a paired comparison needs the same benchmark files")
    return aligned


def _key(unit: dict):
    # POPE question ids repeat across splits; the other benchmarks' ids are unique (MME's name the subtask).
    return (unit["split"], unit["id"]) if "split" in unit else unit["id"]


def compare_eval_dirs(dir_a, dir_b, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict:
    """{task: {metric: {"a", "b", "difference", "ci95", "p_value"}}} for every task both folders evaluated."""
    metrics_a, metrics_b = _read_metrics(dir_a), _read_metrics(dir_b)
    tasks = [t for t in TASK_BENCHMARKS if t in metrics_a and t in metrics_b]
    if not tasks:
        raise LntuneError(f"{dir_a} and {dir_b} have no evaluated task in common (A: {', '.join(metrics_a) or 'none'}; "
                          f"B: {', '.join(metrics_b) or 'none'})")
    out = {}
    for task in tasks:
        name_a, units_a = read_units(units_path(dir_a, task))
        name_b, units_b = read_units(units_path(dir_b, task))
        if name_a != name_b:
            raise LntuneError(f"{task}: {dir_a} holds {name_a} records, {dir_b} holds {name_b}")
        for folder, name, units, metrics in ((dir_a, name_a, units_a, metrics_a), (dir_b, name_b, units_b, metrics_b)):
            check_metrics_match_units(Path(folder), task, name, units, metrics[task])
        out[task] = compare_units(name_a, units_a, units_b, n_resamples=n_resamples, seed=seed,
                                  points=(metrics_a[task], metrics_b[task]), label=task)
    return out


def check_metrics_match_units(eval_dir: Path, task: str, name: str, units: list[dict], metrics) -> None:
    """LntuneError when a headline number of metrics.json is not what units/<task>.json give (an edited file)."""
    import math

    import numpy as np

    if not isinstance(metrics, dict):
        raise LntuneError(f"{eval_dir / 'metrics.json'}: {task} is not a dict of metrics")
    if not units:
        raise LntuneError(f"{units_path(eval_dir, task)}: holds no records")
    recomputed = benchmark(name).statistic(units)(np.ones((1, len(units))))
    for metric in HEADLINE_METRICS[name]:
        if metric not in recomputed or metric not in metrics:
            continue
        stated, found = metrics[metric], float(np.asarray(recomputed[metric]).reshape(-1)[0])
        if not isinstance(stated, (int, float)) or not math.isclose(stated, found, rel_tol=1e-4, abs_tol=1e-4):
            raise LntuneError(f"{eval_dir / 'metrics.json'}: {task} {metric} is {stated!r} but "
                              f"{units_path(eval_dir, task)} gives {found:.4f}; one of the two was changed after "
                              "the evaluation: re-run the same `lntune eval` command to score it again")


def _read_metrics(eval_dir) -> dict:
    path = Path(eval_dir) / "metrics.json"
    if not path.is_file():
        raise LntuneError(f"{path}: not found; is {eval_dir} an `lntune eval --out` folder?")
    metrics = load_json(path, "lntune eval metrics ({task: metrics})")
    if not isinstance(metrics, dict):
        raise LntuneError(f"{path}: expected {{task: metrics}}")
    return metrics


def format_comparison(result: dict, name_a: str = "A", name_b: str = "B") -> str:
    """A plain-text table of `compare_eval_dirs`' result."""
    from lntune.eval.report import with_interval

    lines = [f"{'task':<11}{'metric':<15}{name_a[:10]:>10}{name_b[:10]:>10}{'B - A':>10}  {'95% CI':<20}{'p':>7}"]
    for task, metrics in result.items():
        for metric, d in metrics.items():
            lines.append(f"{task:<11}{metric:<15}{d['a']:>10.2f}{d['b']:>10.2f}{d['difference']:>+10.2f}  "
                         f"{with_interval(None, d['ci95'], 2):<20}{d['p_value']:>7.3f}")
    lines.append("(paired bootstrap over each benchmark's questions/images; p: two-sided)")
    return "\n".join(lines)
