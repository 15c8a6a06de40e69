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

HEADER = ("Model", "MME (P/C)", "VQAv2", "MSCOCO", "Flickr30k", "POPE acc (pop/rand/adv)")
POPE_ORDER = ("popular", "random", "adversarial")
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
    cells = [_mme_cell(metrics["mme"]) if metrics.get("mme") else MISSING]
    vqa = metrics.get("vqav2")
    cells.append(with_interval(vqa["accuracy"], _ci(vqa, "accuracy"), 2) if vqa else MISSING)
    for task in ("coco", "flickr30k"):
        captions = metrics.get(task)
        cells.append(with_interval(captions["CIDEr"], _ci(captions, "CIDEr"), 2) if captions else MISSING)
    pope = metrics.get("pope")
    if pope:
        cells.append("/".join(with_interval(pope[s]["accuracy"], _ci(pope, s, "accuracy"))
                              if s in pope else MISSING for s in POPE_ORDER))
    else:
        cells.append(MISSING)
    return cells


def _ci(metrics: dict, *keys):
    """The interval at `keys` in metrics["ci95"], or None."""
    node = metrics.get("ci95")
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _mme_cell(mme: dict) -> str:
    """"P/C"; a side none of whose subtasks was run (the world has no cognition ones) shows "-"."""
    from lntune.eval.tasks.mme import COGNITION, PERCEPTION

    ran = set(mme.get("subtasks", {})) or set(PERCEPTION + COGNITION)
    perception = with_interval(mme["perception"], _ci(mme, "perception")) if ran & set(PERCEPTION) else MISSING
    cognition = with_interval(mme["cognition"], _ci(mme, "cognition")) if ran & set(COGNITION) else MISSING
    return f"{perception}/{cognition}"


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
