"""Training logs: a progress bar (loss, lr, tokens/s, ETA), metrics.jsonl, TensorBoard, a loss-curve PNG.

On resume, metrics.jsonl is cut back to the resumed step so the file never holds a step twice. Rows are strict
JSON: a non-finite loss or gradient norm is written as null (with a warning).
"""

import time
from pathlib import Path

from lntune.jsonio import dumps_strict


class TrainLogger:
    def __init__(self, output_dir: Path, total_steps: int, start_step: int, enabled: bool = True):
        self.enabled = enabled
        self.path = output_dir / "metrics.jsonl"
        self.start_time = time.perf_counter()
        self.tokens_since_start = 0
        self.bar = self.writer = None
        if not enabled:
            return
        truncate_jsonl(self.path, start_step)
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(output_dir / "tensorboard"), purge_step=start_step + 1)
        except ImportError:  # tensorboard is a dependency; a stripped install still trains
            self.writer = None

    def log(self, step: int, epoch: int, loss: float, lr: float, grad_norm, tokens: int) -> dict:
        self.tokens_since_start += tokens
        elapsed = time.perf_counter() - self.start_time
        row = {"step": step, "epoch": epoch, "loss": loss, "lr": lr,
               "grad_norm": None if grad_norm is None else float(grad_norm), "tokens": tokens,
               "tokens_per_s": self.tokens_since_start / max(elapsed, 1e-9), "elapsed_s": elapsed}
        if not self.enabled:
            return row
        with self.path.open("a") as f:
            f.write(dumps_strict(row, self.path) + "\n")
        if self.writer is not None:
            for key in ("loss", "lr", "tokens_per_s"):
                self.writer.add_scalar(f"train/{key}", row[key], step)
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:.0f}")
        self.bar.update(1)
        return row

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def truncate_jsonl(path: Path, step: int) -> None:
    """Keep only the rows of a per-step JSONL file up to `step` (all of them gone when step is 0)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = [line for line, row in zip(lines, read_metrics(path)) if row["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


def read_metrics(path: Path) -> list[dict]:
    """The rows of a per-step JSONL file ({"step": N, ...} each); LntuneError naming a bad line."""
    from lntune.errors import LntuneError
    from lntune.jsonio import load_jsonl

    if not path.exists():
        return []
    rows = load_jsonl(path, "per-step records (one JSON object with 'step' per line)", tag_lines=False)
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("step"), int):
            raise LntuneError(f"{path}: record {number} has no integer 'step'; delete the line (or the file)")
    return rows


def plot_loss_curve(metrics_path: Path, out_png: Path, title: str = "") -> Path | None:
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [float("nan") if r["loss"] is None else r["loss"] for r in rows], lw=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title or metrics_path.parent.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def peak_memory_mb(device) -> float:
    """Peak memory of this process: CUDA max_memory_allocated on GPU, peak RSS on CPU."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
