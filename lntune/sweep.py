"""Learning-rate sweeps: stage 2 once per learning rate, each evaluated on a selection task; pick the best.

    lntune sweep --config configs/world/stage2_layernorm.yaml --lrs 2e-3,1e-3,6e-4 --select-task flickr30k

The paper searches 11 values (PAPER_GRID) and selects by Flickr30k CIDEr. Resumable: finished runs and
evaluations are skipped. Writes OUT/sweep.json, OUT/sweep.md and OUT/sweep.png (metric vs learning rate).
"""

import json
from pathlib import Path

from lntune.errors import LntuneError
from lntune.locks import locked

PAPER_GRID = (2e-3, 1e-3, 6e-4, 3e-4, 1e-4, 5e-5, 2e-5, 1e-5, 6e-6, 1e-6, 1e-7)


def selection_metric(task: str, metrics: dict) -> float:
    """The single number a sweep maximises for a task (`metrics`: that task's)."""
    from lntune.eval.scores import Scores

    return Scores.of({task: metrics}).selection(task)


def lr_tag(lr: float) -> str:
    return f"lr-{lr:.0e}".replace("e-0", "e-")


@locked("out", "sweep")
def sweep(config_path, lrs, out, select_task="flickr30k", overrides=(), data_root=None, limit=None,
          batch_size=8) -> dict:
    from lntune.eval.scores import check_selection_task
    from lntune.pipeline import evaluate_run, ready_config, run_stage

    check_selection_task(select_task)  # validate early
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for lr in lrs:
        run_dir = out / lr_tag(lr)
        config = ready_config(config_path, [*overrides, f"train.lr={lr}", f"output_dir={run_dir}"])
        root = Path(data_root) if data_root else _world_eval_root(config)
        run_stage(config)
        metrics = evaluate_run(run_dir, run_dir / "eval", root, tasks=(select_task,), limit=limit,
                               batch_size=batch_size, name=lr_tag(lr), image_root=_image_root(config, data_root))
        rows.append({"lr": lr, "run": str(run_dir), "metric": selection_metric(select_task, metrics[select_task])})
    best = max(rows, key=lambda r: r["metric"])
    result = {"select_task": select_task, "rows": rows, "best": best}
    (out / "sweep.json").write_text(json.dumps(result, indent=2))
    (out / "sweep.md").write_text(sweep_markdown(result))
    plot_sweep(result, out / "sweep.png")
    return result


def _world_eval_root(config) -> Path:
    if config.world is None:
        raise LntuneError("--data-root is required when the config has no `world:` section")
    return Path(config.data.image_folder).parent / "eval"


def _image_root(config, data_root):
    return None if data_root else Path(config.data.image_folder)


def sweep_markdown(result: dict) -> str:
    lines = [f"| learning rate | {result['select_task']} |", "|---:|---:|"]
    for row in result["rows"]:
        mark = " **best**" if row is result["best"] or row["lr"] == result["best"]["lr"] else ""
        lines.append(f"| {row['lr']:.0e} | {row['metric']:.2f}{mark} |")
    return "\n".join(lines) + "\n"


def plot_sweep(result: dict, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result["rows"], key=lambda r: r["lr"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["lr"] for r in rows], [r["metric"] for r in rows], marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(result["select_task"])
    ax.axvline(result["best"]["lr"], color="gray", ls="--", lw=1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
