"""The results table in the layout of the paper's Table 1.

    | Model | MME (P/C) | VQAv2 | MSCOCO | Flickr30k | POPE acc (pop/rand/adv) |

MME is perception/cognition (official totals; the paper protocol leaves out landmark and artwork; a
side with no subtask run, like the world's cognition, shows "-");
VQAv2 is the VQA accuracy; MSCOCO and Flickr30k are CIDEr x100 on the Karpathy test split; POPE is the
accuracy (%) of the popular / random / adversarial splits, in that order: the paper's baseline rows
(MiniGPT-4 69.7/79.7/65.2, mPLUG-Owl 50.9/54.0/50.7) are the POPE paper's accuracies in that order, and
the authors' harness runs the splits popular, random, adversarial. A task not evaluated shows "-".
Metrics scored with a bootstrap show their 95% interval after the value: `66.7 [60.9, 72.3]`.

    from lntune.eval.report import table1_markdown
    print(table1_markdown([("LayerNorm", metrics)]))
"""

from __future__ import annotations

from pathlib import Path

from lntune.eval.scores import POPE_SPLITS, Scores

HEADER = ("Model", "MME (P/C)", "VQAv2", "MSCOCO", "Flickr30k", "POPE acc (pop/rand/adv)")
POPE_ORDER = POPE_SPLITS
MISSING = "-"


def with_interval(value, interval, decimals: int = 1) -> str:
    """"66.7 [60.9, 72.3]": a value and its interval at the same precision (either may be None)."""
    parts = [] if value is None else [f"{value:.{decimals}f}"]
    if interval:
        parts.append(f"[{interval[0]:.{decimals}f}, {interval[1]:.{decimals}f}]")
    return " ".join(parts) if parts else MISSING


def table1_cells(metrics: dict) -> list[str]:
    """The five value cells of one model's row from its {task: metrics} dict, each value followed by its
    95% interval when the metrics carry one ("ci95")."""
    s = Scores.of(metrics)

    def cell(key, decimals=1):
        value = getattr(s, key) if hasattr(s, key) else s.pope_splits.get(key.removeprefix("pope_"))
        return MISSING if value is None else with_interval(value, s.interval(key), decimals)

    # MME "P/C"; a side none of whose subtasks was run (the world has no cognition ones) shows "-"
    mme = "/".join(cell(f"mme_{side}") if side in s.mme_sides else MISSING for side in ("perception", "cognition"))
    cells = [mme if s.mme_sides else MISSING, cell("vqav2", 2), cell("coco", 2), cell("flickr30k", 2)]
    cells.append("/".join(cell(f"pope_{split}") for split in POPE_ORDER) if s.pope_splits else MISSING)
    return cells


def table1_markdown(rows: list[tuple[str, dict]], protocol: str | None = None) -> str:
    """A markdown table with one row per (model name, {task: metrics}) pair."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    for name, metrics in rows:
        lines.append("| " + " | ".join([name] + table1_cells(metrics)) + " |")
    table = "\n".join(lines) + "\n"
    if protocol:
        table += (f"\nProtocol: {protocol}. MME: perception/cognition; VQAv2: accuracy; MSCOCO, Flickr30k: CIDEr "
                  "(Karpathy test); POPE: accuracy % on popular/random/adversarial."
                  + (" [low, high]: 95% bootstrap interval." if any(_has_intervals(m) for _, m in rows) else "")
                  + "\n")
    return table


def _has_intervals(metrics: dict) -> bool:
    return any(isinstance(m, dict) and m.get("ci95") for m in metrics.values())


def write_report(path, rows: list[tuple[str, dict]], protocol: str | None = None) -> Path:
    """Write `table1_markdown(rows)` to `path` under a title line."""
    path = Path(path)
    path.write_text("# Evaluation results\n\n" + table1_markdown(rows, protocol=protocol), encoding="utf-8")
    return path
