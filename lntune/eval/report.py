"""The results table in the layout of the paper's Table 1.

    | Model | MME (P/C) | VQAv2 | MSCOCO | Flickr30k | POPE acc (pop/rand/adv) |

MME is perception/cognition (official totals; the paper protocol leaves out landmark and artwork; a
side with no subtask run, like the world's cognition, shows "-");
VQAv2 is the VQA accuracy; MSCOCO and Flickr30k are CIDEr x100 on the Karpathy test split; POPE is the
accuracy (%) of the popular / random / adversarial splits, in that order: the paper's baseline rows
(MiniGPT-4 69.7/79.7/65.2, mPLUG-Owl 50.9/54.0/50.7) are the POPE paper's accuracies in that order, and
the authors' harness runs the splits popular, random, adversarial. A task not evaluated shows "-".

    from lntune.eval.report import table1_markdown
    print(table1_markdown([("LayerNorm", metrics)]))
"""

from __future__ import annotations

from pathlib import Path

HEADER = ("Model", "MME (P/C)", "VQAv2", "MSCOCO", "Flickr30k", "POPE acc (pop/rand/adv)")
POPE_ORDER = ("popular", "random", "adversarial")
MISSING = "-"


def table1_cells(metrics: dict) -> list[str]:
    """The five value cells of one model's row from its {task: metrics} dict."""
    cells = [_mme_cell(metrics["mme"]) if metrics.get("mme") else MISSING]
    vqa = metrics.get("vqav2")
    cells.append(f"{vqa['accuracy']:.2f}" if vqa else MISSING)
    for task in ("coco", "flickr30k"):
        captions = metrics.get(task)
        cells.append(f"{captions['CIDEr']:.2f}" if captions else MISSING)
    pope = metrics.get("pope")
    if pope:
        cells.append("/".join(f"{pope[s]['accuracy']:.1f}" if s in pope else MISSING for s in POPE_ORDER))
    else:
        cells.append(MISSING)
    return cells


def _mme_cell(mme: dict) -> str:
    """"P/C"; a side none of whose subtasks was run (the world has no cognition ones) shows "-"."""
    from lntune.eval.tasks.mme import COGNITION, PERCEPTION

    ran = set(mme.get("subtasks", {})) or set(PERCEPTION + COGNITION)
    perception = f"{mme['perception']:.1f}" if ran & set(PERCEPTION) else MISSING
    cognition = f"{mme['cognition']:.1f}" if ran & set(COGNITION) else MISSING
    return f"{perception}/{cognition}"


def table1_markdown(rows: list[tuple[str, dict]], protocol: str | None = None) -> str:
    """A markdown table with one row per (model name, {task: metrics}) pair."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    for name, metrics in rows:
        lines.append("| " + " | ".join([name] + table1_cells(metrics)) + " |")
    table = "\n".join(lines) + "\n"
    if protocol:
        table += (f"\nProtocol: {protocol}. MME: perception/cognition; VQAv2: accuracy; MSCOCO, Flickr30k: CIDEr "
                  "(Karpathy test); POPE: accuracy % on popular/random/adversarial.\n")
    return table


def write_report(path, rows: list[tuple[str, dict]], protocol: str | None = None) -> Path:
    """Write `table1_markdown(rows)` to `path` under a title line."""
    path = Path(path)
    path.write_text("# Evaluation results\n\n" + table1_markdown(rows, protocol=protocol), encoding="utf-8")
    return path
