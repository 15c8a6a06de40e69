"""LayerNorm gradient statistics over training (the paper's Sec. 5.3, Fig. 4, A3, A4), read from a run's
grads.jsonl (written by the training loop when the config has `train.track_grads: [layer, ...]`).

Each row of grads.jsonl summarises, at one optimizer step, the elements of the gradient of one norm
weight (`input_layernorm` or `post_attention_layernorm` of one decoder layer): mean, std, quantiles.
For every (layer, norm) the summary gives, over the recorded steps:

    mean_of_std   mean over steps of the per-step std          (how spread the gradient is, typically)
    var_of_mean   variance over steps (population, /n) of the per-step mean   (how much it wanders)
    mean_of_mean  mean over steps of the per-step mean
    mean_iqr      mean over steps of the per-step q75 - q25    (a spread that ignores outliers)

`compare_summaries(a, b)` divides a's numbers by b's for the (layer, norm) pairs both runs recorded.
A step recorded twice (a run resumed from a checkpoint re-records the steps after it) counts once, the
last row winning.

    lntune analyze gradients runs/ln --compare runs/ft --layers 11,21 --out analysis/
    from lntune.analysis import gradient_summary, plot_gradients
"""

from __future__ import annotations

from pathlib import Path

from lntune.errors import LntuneError
from lntune.jsonio import load_jsonl

GRADS_FILE = "grads.jsonl"
_REQUIRED = ("step", "layer", "norm", "mean", "std", "quantiles")


def grads_path(run_dir) -> Path:
    """RUN_DIR/grads.jsonl (or the file itself when given one); a clear error when it is missing."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / GRADS_FILE
    if not path.is_file():
        raise LntuneError(
            f"{path}: not found; this run recorded no gradient statistics. Train with "
            f"`train.track_grads: [11, 21]` in the config (or the override train.track_grads=[11,21]) "
            f"and a strategy that trains the norms (layernorm, layernorm-simple, finetune)")
    return path


def read_series(run_dir, layers=None) -> dict[tuple[int, str], list[dict]]:
    """{(layer, norm): rows sorted by step} from a run's grads.jsonl, optionally only the given layers."""
    path = grads_path(run_dir)
    series: dict[tuple[int, str], dict[int, dict]] = {}
    for row in load_jsonl(path, "gradient statistics (grads.jsonl)"):
        lineno = row.pop("_line")
        missing = [key for key in _REQUIRED if key not in row]
        if missing:
            raise LntuneError(f"{path}:{lineno}: missing key {missing[0]!r}")
        if len(row["quantiles"]) != 5:
            raise LntuneError(f"{path}:{lineno}: 'quantiles' must hold 5 values (q05, q25, q50, q75, q95)")
        series.setdefault((int(row["layer"]), str(row["norm"])), {})[int(row["step"])] = row
    if not series:
        raise LntuneError(f"{path}: empty; no step was recorded")
    if layers is not None:
        present = sorted({layer for layer, _ in series})
        absent = [layer for layer in layers if layer not in present]
        if absent:
            raise LntuneError(f"{path}: layer {absent[0]} was not tracked; tracked layers: "
                              f"{', '.join(map(str, present))}")
        series = {key: rows for key, rows in series.items() if key[0] in layers}
    return {key: [rows[step] for step in sorted(rows)] for key, rows in sorted(series.items())}


def summarize_rows(rows: list[dict]) -> dict:
    """The four statistics of one (layer, norm) series (see the module docstring)."""
    n = len(rows)
    means = [float(r["mean"]) for r in rows]
    mean_of_mean = sum(means) / n
    return {
        "steps": n,
        "first_step": int(rows[0]["step"]),
        "last_step": int(rows[-1]["step"]),
        "mean_of_std": sum(float(r["std"]) for r in rows) / n,
        "var_of_mean": sum((m - mean_of_mean) ** 2 for m in means) / n,
        "mean_of_mean": mean_of_mean,
        "mean_iqr": sum(float(r["quantiles"][3]) - float(r["quantiles"][1]) for r in rows) / n,
    }


def gradient_summary(run_dir, layers=None) -> dict:
    """{"run": path, "entries": [{"layer", "norm", "steps", "first_step", "last_step", "mean_of_std",
    "var_of_mean", "mean_of_mean", "mean_iqr"}, ...]} for every tracked (layer, norm), sorted."""
    series = read_series(run_dir, layers)
    entries = [{"layer": layer, "norm": norm, **summarize_rows(rows)} for (layer, norm), rows in series.items()]
    return {"run": str(run_dir), "entries": entries}


def compare_summaries(summary: dict, baseline: dict) -> list[dict]:
    """Ratios summary / baseline of mean_of_std and var_of_mean per shared (layer, norm); None where the
    baseline's value is 0. Below 1 means `summary`'s gradients are more concentrated (the paper's claim
    for LayerNorm tuning against finetuning)."""
    base = {(e["layer"], e["norm"]): e for e in baseline["entries"]}
    ratios = []
    for entry in summary["entries"]:
        other = base.get((entry["layer"], entry["norm"]))
        if other is None:
            continue
        ratios.append({
            "layer": entry["layer"], "norm": entry["norm"],
            **{f"{stat}_ratio": (entry[stat] / other[stat] if other[stat] else None)
               for stat in ("mean_of_std", "var_of_mean")},
        })
    return ratios


def plot_gradients(runs: dict[str, Path], out_png, layers=None) -> Path:
    """Fig. 4-style panels (one per tracked layer and norm) with every run overlaid; returns the PNG path."""
    from lntune.analysis.plots import plot_gradient_series

    return plot_gradient_series({name: read_series(path, layers) for name, path in runs.items()}, out_png)
