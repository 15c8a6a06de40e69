"""Figures of the paper's Sec. 5: layer-similarity heatmaps (Fig. 3, A1, A2) and LayerNorm gradients over
training (Fig. 4, A3, A4), and the yes/no grounding control (ROC AUC with true vs shuffled images). Written
with matplotlib's Agg backend (no display needed).

    from lntune.analysis import plot_similarity, plot_gradients
    plot_similarity({"finetune": ft_result, "layernorm": ln_result}, "similarity.png")
    plot_gradients({"layernorm": Path("runs/ln"), "finetune": Path("runs/ft")}, "gradients.png", layers=[11, 21])
"""

from __future__ import annotations

import itertools
from pathlib import Path

from lntune.errors import LntuneError

RUN_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_similarity(results: dict[str, dict], out_png) -> Path:
    """Heatmaps of `layer_similarity` results side by side, one per model, on one shared colour scale."""
    if not results:
        raise LntuneError("plot_similarity: no result to plot")
    import numpy as np

    plt = _pyplot()
    matrices = {name: np.asarray(r["matrix"], dtype=float) for name, r in results.items()}
    low = min(float(m.min()) for m in matrices.values())
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices) + 0.8, 4.4), squeeze=False,
                             layout="constrained")
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis", origin="upper")
        ax.set_title(f"{name}\nmean over layer pairs {results[name]['mean_offdiag']:.3f}", fontsize=10)
        ax.set_xlabel("layer")
        ax.set_ylabel("layer")
        step = max(1, len(matrix) // 8)
        ticks = list(range(0, len(matrix), step))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label="cosine similarity")
    return _save(fig, plt, out_png)


def plot_gradient_series(series: dict[str, dict], out_png) -> Path:
    """A grid of panels, one row per layer and one column per norm; each run drawn as its median with
    25-75 % and 5-95 % bands over steps. `series` maps a run name to `gradients.read_series(...)` output.
    """
    keys = {key for rows in series.values() for key in rows}
    if not keys:
        raise LntuneError("plot_gradients: nothing to plot")
    layers = sorted({layer for layer, _ in keys})
    norms = sorted({norm for _, norm in keys})
    plt = _pyplot()
    fig, axes = plt.subplots(len(layers), len(norms), figsize=(6.0 * len(norms), 3.0 * len(layers)),
                             squeeze=False, layout="constrained")
    for row, layer in enumerate(layers):
        for col, norm in enumerate(norms):
            ax = axes[row, col]
            drawn = False
            for color, (run, rows) in zip(itertools.cycle(RUN_COLORS), series.items()):
                points = rows.get((layer, norm))
                if not points:
                    continue
                steps = [p["step"] for p in points]
                q05, q25, q50, q75, q95 = zip(*(p["quantiles"] for p in points))
                ax.fill_between(steps, q05, q95, color=color, alpha=0.15, lw=0)
                ax.fill_between(steps, q25, q75, color=color, alpha=0.35, lw=0)
                ax.plot(steps, q50, color=color, lw=1.2, label=run)
                drawn = True
            ax.set_title(f"layer {layer} {norm}", fontsize=10)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("weight gradient")
            ax.axhline(0.0, color="gray", lw=0.6)
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(fontsize=8, loc="upper right", title="median, 25-75 %, 5-95 %", title_fontsize=7)
            else:
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, plt, out_png)


def plot_grounding(result: dict, out_png) -> Path:
    """Bars of ROC AUC with true and shuffled images per split/subtask (0.5: no information)."""
    import numpy as np

    plt = _pyplot()
    names = [n for n in result["groups"] if "/" in n] or list(result["groups"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(names) + 1.5), 3.4))
    for offset, key, label in ((-0.2, "true", "true images"), (0.2, "shuffled", "shuffled images")):
        ax.bar(x + offset, [result["groups"][n][key]["auc"] or 0.0 for n in names], width=0.4, label=label)
    ax.axhline(0.5, color="gray", ls="--", lw=1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("ROC AUC of log P(yes) - log P(no)")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
    ax.legend(fontsize=7)
    return _save(fig, plt, out_png)


def _save(fig, plt, out_png) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out_png
