"""The reproduction report: DIR/report.md, DIR/results.json and DIR/figures/*.png.

    from lntune.reproduce.report import write_report, render, export_docs
    write_report(ctx, records)                     # called by the runner at the end
    export_docs(Path("runs/reproduce"), Path("docs"))   # -> docs/reproduction.md + docs/reproduction/*.png

For every table and figure of the paper: our numbers beside the paper's (read from lntune/paper/*.yaml), and
one verdict line per claim, decided by the rule printed next to it (lntune/reproduce/verdicts.py) on the 95%
interval of the claim's effect. Our scores are means over training seeds with their standard deviation over
seeds and the 95% interval of the mean from the two-level bootstrap (lntune/reproduce/resampled.py). Each rule
is also applied to the paper's own numbers (their direction), so a reader sees how firmly the paper itself
supports the claim.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lntune.reproduce.evidence import collect, our_evidence, paper_evidence
from lntune.reproduce.paper_values import OOM, claims, claims_by_id, figures, load_table
from lntune.reproduce.verdicts import (BENCHMARKS, CONTRADICTED, INCONCLUSIVE, REPRODUCED, RULES, STATUSES,
                                       SUBSET_TYPES, TABLE1_STRATEGIES, UNTESTABLE, judge, mean_ranks, relative_gain,
                                       row_from_metrics, scores)

FIGURES = "figures"
NAMES = {"finetune": "Finetune", "lora": "LoRA", "attn-qv": "Attn. QV Proj.", "attn-mlp": "Attn. MLP",
         "layernorm": "LayerNorm", "layernorm-simple": "LayerNorm-simp.", "connector": "Connector"}
BENCH_LABELS = {"mme": "MME", "vqav2": "VQAv2", "coco": "MSCOCO", "flickr30k": "Flickr30k", "pope": "POPE"}


def write_report(ctx, records: dict) -> str:
    results = collect(ctx)
    results["jobs"] = records
    out = ctx.out
    (out / "results.json").write_text(json.dumps(results, indent=2))
    figs = make_figures(results, out)
    text = render(results, figs)
    (out / "report.md").write_text(text)
    return text


def export_docs(run_dir: Path, docs: Path) -> Path:
    """Copy run_dir/report.md to docs/reproduction.md and its figures to docs/reproduction/."""
    run_dir, docs = Path(run_dir), Path(docs)
    target = docs / "reproduction"
    target.mkdir(parents=True, exist_ok=True)
    for png in sorted((run_dir / FIGURES).glob("*.png")):
        shutil.copyfile(png, target / png.name)
    text = (run_dir / "report.md").read_text().replace(f"]({FIGURES}/", "](reproduction/")
    (docs / "reproduction.md").write_text(text)
    return docs / "reproduction.md"


# ------------------------------------------------------------------------------------------- formatting

def _num(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row_cells(row: dict) -> list[str]:
    """MME P/C, VQAv2, MSCOCO, Flickr30k, POPE pop/rand/adv of a Table-1-style row (ours or the paper's)."""
    mme = "-" if row.get("mme_perception") is None else \
        f"{row['mme_perception']:.1f}/{_num(row.get('mme_cognition'), 1)}"
    pope = "/".join(_num(row.get(f"pope_{s}"), 1) for s in ("popular", "random", "adversarial"))
    return [mme, _num(row.get("vqav2")), _num(row.get("coco")), _num(row.get("flickr30k")), pope]


def mean_row(per_seed: list[dict]) -> dict:
    """The Table-1-style row of a model's per-seed metrics, each column the mean over the seeds."""
    rows = [row_from_metrics(m) for m in per_seed]
    return {c: (None if any(r[c] is None for r in rows) else sum(r[c] for r in rows) / len(rows)) for c in rows[0]}


def scores_table(names: list[tuple[str, str]], results: dict) -> str:
    """Our models' five scores as mean ± sd over seeds [95% interval of the mean], with the seed count."""
    import numpy as np

    from lntune.eval.bootstrap import percentile_interval

    models, draws = results["models"], results.get("resampled") or {}
    lines = ["| model | seeds | " + " | ".join(BENCH_LABELS[b] for b in BENCHMARKS) + " |",
             "|---|---:|" + "---:|" * len(BENCHMARKS)]
    for label, name in names:
        if name not in models:
            continue
        per_seed = [scores(row_from_metrics(m)) for m in models[name]]
        cells = []
        for b in BENCHMARKS:
            values = np.asarray([s[b] for s in per_seed if b in s])
            if len(values) < len(per_seed):
                cells.append("-")
                continue
            sd = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""
            ci = percentile_interval(np.asarray(draws[name][b]), values.mean()) if b in draws.get(name, {}) else None
            cells.append(f"{values.mean():.2f}{sd}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
        lines.append(f"| {label} | {len(per_seed)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


SCORES_NOTE = ("mean ± sd over training seeds [95% interval of the mean: two-level bootstrap, seeds and questions "
               "resampled]; MME = perception + cognition, POPE = mean accuracy over the three splits")


def rows_table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| model | MME (P/C) | VQAv2 | MSCOCO | Flickr30k | POPE acc (pop/rand/adv) |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join([name, *row_cells(row)]) + " |" for name, row in rows]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], numeric: bool = True) -> str:
    """A markdown table; with `numeric`, every column but the first is right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:" if numeric else "---"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _mean_sd(values, digits=3) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def verdict_block(claim_id: str, evidence: dict, paper: dict) -> str:
    """One claim: statement, our verdict and its measurements, the rule, and the rule on the paper's numbers."""
    claim = claims_by_id()[claim_id]
    verdict = judge(claim_id, evidence)
    lines = [f"- **{claim_id}** ({claim['source']}): {claim['statement']}.",
             f"  - **Verdict: {verdict.status}** — {verdict.detail}.",
             f"  - Rule: {RULES[claim_id].text}."]
    on_paper = paper.get(claim_id) or []
    if on_paper:
        statuses = [(label, judge(claim_id, ev)) for label, ev in on_paper]
        held = sum(v.status == REPRODUCED for _, v in statuses)
        lines.append(f"  - The same rule on the paper's numbers (no published uncertainty: the direction decides): "
                     f"holds for {held}/{len(statuses)} (" + "; ".join(
                         f"{label}: " + (v.status if v.value is None else f"{v.value:+.2f}") for label, v in statuses)
                     + ").")
    if claim["text_numbers"]:
        lines.append("  - The paper's text: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in
                                                          claim["text_numbers"].items()) + ".")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- the report

def render(results: dict, figs: dict) -> str:
    ev = our_evidence(results)
    paper = paper_evidence()
    models = results["models"]
    rows = {name: mean_row(m) for name, m in models.items()}
    verdicts = {c["id"]: judge(c["id"], ev) for c in claims()}
    counts = {s: sum(v.status == s for v in verdicts.values()) for s in STATUSES}
    parts = [_header(results, counts), _summary(verdicts)]
    parts.append(_section_table1(results, rows, ev, paper, figs))
    parts.append(_section_table2(results, ev, paper, figs))
    parts.append(_section_sweeps(results, ev, paper, figs))
    parts.append(_section_fig2_table3(results, rows, ev, paper, figs))
    parts.append(_section_table4(results, rows, ev, paper))
    parts.append(_section_table5(results, rows, ev, paper))
    parts.append(_section_similarity(results, ev, paper, figs))
    parts.append(_section_gradients(results, ev, paper, figs))
    parts.append(_section_figures_without_numbers())
    parts.append(_section_budget(results))
    return "\n".join(parts)


def _sizes(results) -> str:
    z = results.get("sizes") or {}
    if not z:
        return ""
    name = f"instruct/{z.get('mix', 'mixed')}.json"
    mix = f"all of {name}" if z["mix_samples"] is None else f"{z['mix_samples']} samples of {name}"
    subsets = ("all of its type's file" if z["subset_samples"] is None else f"{z['subset_samples']} samples")
    limit = z["eval_limit"]
    if limit is None:
        limit = "complete benchmarks"
    elif isinstance(limit, dict):
        limit = "the first " + ", ".join(f"{n} {_LIMIT_UNITS.get(t, 'questions')} of {t}" for t, n in limit.items()) + \
            " and every question of the other tasks"
    else:
        limit = f"the first {limit} questions per task (per MME subtask and POPE split; images for captioning)"
    sweep = "all" if z["sweep_limit"] is None else f"the first {z['sweep_limit']}"
    seeds = z.get("seeds") or [0]
    return (f"Sizes: every stage-2 run trains on {mix} (overrides {', '.join(z['stage2']) or 'none'}), each "
            f"one-type subset on {subsets} with the same overrides; stage 1: {', '.join(z['stage1']) or 'one epoch'}. "
            "A swept "
            f"learning rate is chosen on {sweep} Flickr30k-style test images; the final evaluations use {limit}. "
            f"Seeds: the Table 1 strategies are trained with each of the train seeds {', '.join(map(str, seeds))} "
            "(the seed sets the stage-2 data subset and order and the init of new parameters such as LoRA's); stage 1, "
            f"the vision towers, the subsets and Tables 4 and 5 use seed {seeds[0]} only (one shared stage-1 model); "
            "layer similarity and gradient statistics are measured for every seed. Intervals: "
            f"{z.get('resamples', 1000)} bootstrap resamples, seeded. Torch threads: {z.get('threads') or 'default'}.\n\n")


_LIMIT_UNITS = {"pope": "questions per split", "mme": "questions per subtask", "coco": "images",
                "flickr30k": "images", "vqav2": "questions"}


def _lrs_text(results) -> str:
    lrs = results["lrs"]
    sweeps = results.get("sweeps") or {}
    swept = {s: v for s, v in lrs.items() if len(v) > 1}
    fixed = {s: v[0] for s, v in lrs.items() if len(v) == 1}
    parts = []
    if swept:
        chosen = [f"{s} {', '.join(f'{lr:.0e}' for lr in grid)}"
                  + (f" (chose {sweeps[s]['best']['lr']:.0e})" if s in sweeps else "") for s, grid in swept.items()]
        parts.append("each strategy was trained at the first seed at every learning rate of its grid, values of the "
                     "paper's 11, and kept at its best on the Flickr30k-style task, as the paper selects: "
                     + "; ".join(chosen))
    if fixed:
        parts.append("one learning rate per strategy without a sweep (`--no-sweep`: "
                     + ", ".join(f"{s} {lr:.0e}" for s, lr in fixed.items()) + ")")
    return "; ".join(parts)


def _machine_text(results) -> str:
    m = results.get("machine") or {}
    if not m:
        return ""
    jobs = results.get("jobs") or {}
    wall = sum(rec.get("measured_s", 0.0) for rec in jobs.values())
    flags = ", ".join(m.get("flags") or []) or "none of AVX2/AVX-512/AMX"
    precision = "bf16 matrix instructions" if m.get("bf16_matrix") else "no bf16 matrix instructions; float32"
    return (f"Machine: {m.get('cores')}-core {m.get('cpu')} (flags: {flags}; {precision}). Wall time of the jobs "
            f"run: {wall / 60:.0f} min (the Budget section splits it).\n\n")


def _header(results, counts) -> str:
    conclusive = counts[REPRODUCED] + counts[CONTRADICTED]
    return (f"# Reproduction of \"Tuning LayerNorm in Attention\" in miniature ({results['preset']})\n\n"
            f"Made by `lntune reproduce --preset {results['preset']}`: SmolLM2-135M-Instruct with a small vision tower "
            f"trained on lntune's synthetic world (`{results['world']}` preset), in place of 7B/13B LLMs with CLIP "
            f"ViT-L/14 on LLaVA data. Learning rates: {_lrs_text(results)}. "
            "The paper's numbers come from `lntune/paper/*.yaml`; every verdict below is decided by the rule printed "
            "with it (`lntune/reproduce/verdicts.py`), which is also applied to the paper's own numbers.\n\n"
            + _sizes(results) + _machine_text(results) +
            "Verdicts: a comparative claim is **reproduced** when the 95% interval of its effect lies on the paper's "
            "side of no difference, **contradicted** when it lies on the other side, and **inconclusive** when it "
            "contains no difference; the interval comes from a two-level bootstrap (training seeds resampled with "
            "replacement, and the benchmarks' questions resampled with replacement, the same questions for every "
            "model). Exact checks (parameter counts, memory, the best learning rate) are reproduced or contradicted.\n\n"
            f"Summary: {conclusive} conclusive ({counts[REPRODUCED]} reproduced, {counts[CONTRADICTED]} contradicted), "
            f"{counts[INCONCLUSIVE]} inconclusive, {counts[UNTESTABLE]} untestable in this setting. A miniature run is "
            "small: read the verdicts as what this setting shows, not as a judgement of the paper.\n\n"
            f"Regenerate: `lntune reproduce --preset {results['preset']} --out runs/reproduce --export-docs docs` "
            "(add `--threads 1` on a machine busy with other work; a killed run continues where it stopped).\n")


def _summary(verdicts) -> str:
    rows = [[f"`{cid}`", claims_by_id()[cid]["source"], f"**{v.status}**", v.detail] for cid, v in verdicts.items()]
    return "## Summary\n\n" + _table(["claim", "paper", "verdict", "measured"], rows, numeric=False)


def _section_table1(results, rows, ev, paper, figs) -> str:
    t1 = load_table("table1")
    ours = [(NAMES[s], rows[s]) for s in TABLE1_STRATEGIES if s in rows]
    text = ["## Table 1: tuning strategies on five benchmarks\n",
            f"Ours ({SCORES_NOTE}; the world has no MME cognition subtask):\n",
            scores_table([(NAMES[s], s) for s in TABLE1_STRATEGIES], results),
            "\nOur means in the paper's layout (MME perception/cognition, POPE accuracy popular/random/adversarial):\n",
            rows_table(ours)]
    ranks_ours = mean_ranks(ev["main"]) if ev["main"] else {}
    paper_ranks = {b: mean_ranks({s: scores(r) for s, r in bb.items()}) for b, bb in t1["backbones"].items()}
    header = ["strategy", "ours", *t1["backbones"]]
    table = [[NAMES[s], _num(ranks_ours.get(s)), *(_num(paper_ranks[b].get(s)) for b in t1["backbones"])]
             for s in TABLE1_STRATEGIES]
    text += ["\nMean rank over the five benchmarks (1 = best of the six; MME = perception + cognition), ours beside "
             "each of the paper's backbones:\n", _table(header, table)]
    if "table1" in figs:
        text.append(f"\n![Table 1]({figs['table1']})\n")
    text.append(_grounding_table(results))
    text.append("\nThe paper's three public baselines (mPLUG-Owl, MiniGPT4, LLaVA-v0) are released 7B checkpoints "
                "and are not reproduced here. The paper's MM-Vicuna-7B rows, for scale:\n")
    text.append(rows_table([(NAMES[s], r) for s, r in t1["backbones"]["MM-Vicuna-7B"].items()]))
    text.append("\n### Claims\n")
    for cid in ("t1_layernorm_vs_finetune", "t1_layernorm_best", "t1_layernorm_vs_lora", "t1_simple_vs_lora",
                "t1_simple_vs_finetune", "t1_mme_cognition", "t1_chat_llm_better"):
        text.append(verdict_block(cid, ev, paper))
    return "\n".join(text)


GROUNDED_MARGIN = 5.0
"""Points by which the lower end of the true-minus-shuffled POPE interval must clear zero for a model to count as
answering from the image."""


def _grounding_table(results) -> str:
    grounding = results.get("grounding") or {}
    if not grounding:
        return ""
    rows = []
    for s in TABLE1_STRATEGIES:
        runs = grounding.get(s)
        if not runs:
            continue
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("true", "shuffled", "difference")}
        per_seed = "; ".join(f"seed {r['seed']}: {r['difference']:+.1f} [{r['interval'][0]:+.1f}, "
                             f"{r['interval'][1]:+.1f}]" for r in runs)
        sees = sum(r["interval"][0] > GROUNDED_MARGIN for r in runs)
        rows.append([NAMES[s], len(runs), f"{mean['true']:.1f}", f"{mean['shuffled']:.1f}",
                     f"{mean['difference']:+.1f}", per_seed, f"{sees}/{len(runs)}"])
    n = next(iter(grounding.values()))[0]["n"]
    blind = [NAMES[s] for s in TABLE1_STRATEGIES if s in grounding and
             not any(r["interval"][0] > GROUNDED_MARGIN for r in grounding[s])]
    note = (f"\n{', '.join(blind)}: no seed answers from the image within this budget (the run ends before its "
            "yes/no decision is learned, or the strategy does not learn it here); its POPE and MME scores are those "
            "of a model that does not see.\n" if blind else "")
    return ("\n### Grounding: POPE with true and with shuffled images\n\n"
            f"Each Table 1 model's first-token yes-vs-no answer to the first {n // 3} questions of each POPE split, "
            "with each question's own image and with the images shuffled among the questions (`lntune analyze "
            "grounding`); accuracy in %, the difference with its 95% paired bootstrap interval over questions. A "
            f"model counts as seeing when the interval's lower end is above +{GROUNDED_MARGIN:.0f} points. Chance "
            "is 50.\n\n" + _table(["model", "seeds", "true images", "shuffled", "difference (mean)",
                                      "difference per seed [95% interval]", "seeds that see"], rows) + note)


def _section_table2(results, ev, paper, figs) -> str:
    t2 = load_table("table2")
    params = results.get("params") or {}
    measured = (params.get("measured") or {}).get("strategies") or {}
    presets = params.get("presets") or {}
    bench = (results.get("bench") or {}).get("rows") or {}
    header = ["strategy", "trainable (ours)", "% (ours)", "peak RSS MB (ours)", "s/step (ours)",
              "7B % (lntune)", "7B % (paper)", "13B % (lntune)", "13B % (paper)", "7B GB (paper)", "13B GB (paper)",
              "7B GB (predicted)", "13B GB (predicted)"]
    predicted = params.get("predicted_gb") or {}
    rows = []
    for s in TABLE1_STRATEGIES:
        m, b, p = measured.get(s, {}), bench.get(s, {}), t2["rows"][s]
        d = t2["params_decimals"][s]
        rows.append([NAMES[s], f"{m['trainable']:,}" if m else "-", _num(m.get("percent"), 3),
                     _num(b.get("peak_mem_mb"), 0), _num(b.get("step_time_s"), 2),
                     _num((presets.get("7b") or {}).get("strategies", {}).get(s, {}).get("percent"), d),
                     _num(p["params_percent_7b"], d),
                     _num((presets.get("13b") or {}).get("strategies", {}).get(s, {}).get("percent"), d),
                     _num(p["params_percent_13b"], d),
                     p["memory_gb_7b"] if p["memory_gb_7b"] == OOM else _num(p["memory_gb_7b"], 1),
                     p["memory_gb_13b"] if p["memory_gb_13b"] == OOM else _num(p["memory_gb_13b"], 1),
                     _num((predicted.get("7b") or {}).get(s), 1), _num((predicted.get("13b") or {}).get(s), 1)])
    lora_r = (params.get("measured") or {}).get("lora_r")
    bench_note = (f"Memory and step time: `lntune bench` (each strategy in its own process, device "
                  f"{results['bench'].get('device')}, batch {results['bench'].get('batch_size')}); on a CPU the "
                  "memory is the process's peak RSS, model weights included."
                  if results.get("bench") else "Memory was not measured in this run (no bench preset).")
    text = ["## Table 2: trainable parameters and memory\n",
            f"'ours' is the measured small model (SmolLM2-135M + world tower, LoRA rank {lora_r}, as trained here; "
            "SmolLM2 ties its embeddings to the output head, and its 49K-token vocabulary makes the base set large). "
            "'lntune' is `lntune.accounting` on the paper's 7B/13B shapes on the meta device with LoRA rank 64. "
            + bench_note + " 'predicted' is `lntune params --memory`'s training-memory model in the paper's setting "
            "(DeepSpeed ZeRO-2 on one GPU, bf16, gradient checkpointing; its assumptions are listed in "
            "docs/benchmarks.md): a prediction, not a measurement.\n", _table(header, rows)]
    if "table2" in figs:
        text.append(f"\n![Table 2]({figs['table2']})\n")
    text.append("\n### Claims\n")
    for cid in ("t2_params_presets", "t2_param_order", "t2_memory_order", "t2_memory_gpu"):
        text.append(verdict_block(cid, ev, paper))
    return "\n".join(text)


def _section_sweeps(results, ev, paper, figs) -> str:
    a1 = load_table("tableA1")
    sweeps = results.get("sweeps") or {}
    lrs = sorted({row["lr"] for s in sweeps.values() for row in s["rows"]}, reverse=True)
    rows = []
    for s in TABLE1_STRATEGIES:
        if s not in sweeps:
            continue
        by_lr = {row["lr"]: row["metric"] for row in sweeps[s]["rows"]}
        rows.append([NAMES[s], *(_num(by_lr.get(lr)) + (" **best**" if lr == sweeps[s]["best"]["lr"] else "")
                                 for lr in lrs)])
    text = ["## Learning-rate search and Table A1\n",
            "Flickr30k-style CIDEr of every stage-2 run (the selection metric), per learning rate:\n",
            _table(["strategy", *(f"{lr:.0e}" for lr in lrs)], rows) if rows else "(no sweep)\n"]
    paper_rows = [[r["label"] + f" (text: {r['text_scale']})",
                   ", ".join(f"{lr:.0e}: {v}" for lr, v in zip(r["lrs"], r["flickr30k"]))] for r in a1["rows"]]
    text += ["\nThe paper's Table A1 (LayerNorm-simple, Flickr30k CIDEr; its row labels contradict its text, see "
             "`lntune/paper/tableA1.yaml`):\n", _table(["row", "lr: CIDEr"], paper_rows, numeric=False)]
    if "sweeps" in figs:
        text.append(f"\n![sweeps]({figs['sweeps']})\n")
    text.append("\n### Claims\n")
    for cid in ("a1_lr_range", "lr_sensitivity"):
        text.append(verdict_block(cid, ev, paper))
    return "\n".join(text)


def _section_fig2_table3(results, rows, ev, paper, figs) -> str:
    fig = figures()["2"]
    subset_rows = [(f"LayerNorm on {t}", rows[f"subset-{t}"]) for t in SUBSET_TYPES if f"subset-{t}" in rows]
    text = ["## Figure 2 and Table 3: data types\n",
            f"Figure 2 has no numbers in the paper's text ({fig['note']}). Ours, LayerNorm on equal-size subsets of "
            f"one instruct type each (at LayerNorm's learning rate; {SCORES_NOTE}):\n",
            scores_table([(f"LayerNorm on {t}", f"subset-{t}") for t in SUBSET_TYPES], results),
            "\nIn the paper's layout:\n", rows_table(subset_rows)]
    if "fig2" in figs:
        text.append(f"\n![Figure 2]({figs['fig2']})\n")
    t3 = ev["table3"]
    t3p = load_table("table3")
    table = []
    for label, e in [("ours", t3), *((b, {"layernorm-conv": scores(r["layernorm-conv20k"]),
                                          "finetune-full": scores(r["finetune-80k"]),
                                          "layernorm-full": scores(r["layernorm-80k"])})
                                     for b, r in t3p["backbones"].items())]:
        conv, ft, ln = e.get("layernorm-conv"), e.get("finetune-full"), e.get("layernorm-full")
        g = lambda a, b, keys: _pct(relative_gain(a, b, keys)) if a and b else "n/a"
        table.append([label, g(conv, ft, ("coco", "flickr30k")), g(conv, ft, ("mme",)),
                      g(conv, ln, ("coco", "flickr30k")), g(conv, ln, ("mme",))])
    text += ["\nTable 3 as relative gains of LayerNorm on the conversation subset (the paper: 20K conversation "
             "samples against the 80K mix), ours beside the paper's backbones:\n",
             _table(["model", "captioning vs finetune-full", "MME vs finetune-full", "captioning vs LayerNorm-full",
                     "MME vs LayerNorm-full"], table)]
    text.append("\n### Claims\n")
    for cid in ("f2_conversation_best", "t3_less_is_more", "t3_subset_vs_full"):
        text.append(verdict_block(cid, ev, paper))
    return "\n".join(text)


def _section_table4(results, rows, ev, paper) -> str:
    t4 = load_table("table4")
    ours = [(label, rows[key]) for label, key in (("LayerNorm + Connector", "layernorm"),
                                                  ("Connector", "table4-connector"),
                                                  ("LayerNorm", "table4-layernorm")) if key in rows]
    reused = (" Our norms-only run is the layernorm-simple run: layernorm without the base set trains exactly "
              "those parameters, and both had the same learning rate." if results.get("table4_norms_only_reused")
              else "")
    text = ["## Table 4: LayerNorm and/or the connector\n",
            "'LayerNorm + Connector' is the layernorm strategy; 'Connector' trains the projector only; 'LayerNorm' "
            "trains the norms with the connector frozen." + reused + f" ({SCORES_NOTE})\n",
            scores_table([("LayerNorm + Connector", "layernorm"), ("Connector", "table4-connector"),
                          ("LayerNorm", "table4-layernorm")], results), "\nIn the paper's layout:\n", rows_table(ours)]
    for backbone, r in t4["backbones"].items():
        text += [f"\nThe paper, {backbone}:\n",
                 rows_table([(label, r[key]) for label, key in (("LayerNorm + Connector", "layernorm+connector"),
                                                                ("Connector", "connector"),
                                                                ("LayerNorm", "layernorm"))])]
    text.append("\n### Claims\n")
    text.append(verdict_block("t4_layernorm_vs_connector", ev, paper))
    return "\n".join(text)


def _section_table5(results, rows, ev, paper) -> str:
    t5 = load_table("table5")
    ours = [(label, rows[key]) for label, key in (("Finetune (classification tower)", "table5-finetune"),
                                                  ("LayerNorm (classification tower)", "table5-layernorm"))
            if key in rows]
    text = ["## Table 5: a vision tower not aligned with language\n",
            "Ours: the world's vision tower trained as a classifier (lntune's ImageNet-ViT analogue) instead of "
            f"contrastively with text; stage 1 again, then finetune and LayerNorm at their learning rates ({SCORES_NOTE}).\n",
            scores_table([("Finetune (classification tower)", "table5-finetune"),
                          ("LayerNorm (classification tower)", "table5-layernorm")], results),
            "\nIn the paper's layout:\n", rows_table(ours), "\nThe paper:\n",
            rows_table([(f"{NAMES[s]}-{b.split('-')[-1]}", r) for b, bb in t5["backbones"].items()
                        for s, r in bb.items()])]
    text.append("\n### Claims\n")
    for cid in ("t5_unaligned_layernorm", "t5_aligned_better"):
        text.append(verdict_block(cid, ev, paper))
    return "\n".join(text)


def _section_similarity(results, ev, paper, figs) -> str:
    t6 = load_table("table6")
    sim = results.get("similarity") or {}
    per_seed = results.get("similarity_per_seed") or {s: [v["mean_offdiag"]] for s, v in sim.items()}
    rows = [["ours (SmolLM2-135M, " + (f"{next(iter(sim.values()))['layers']} layers" if sim else "-") +
             f", mean ± sd over {len(per_seed.get('layernorm', []))} seeds)",
             _mean_sd(per_seed.get("layernorm")), _mean_sd(per_seed.get("finetune"))]]
    rows += [[b, _num(r["layernorm"], 3), _num(r["finetune"], 3)] for b, r in t6["rows"].items()]
    text = ["## Table 6 and Figure 3: layer similarity\n",
            "Mean cosine similarity between the hidden states of every pair of decoder layers (docs/analysis.md), "
            f"on {next(iter(sim.values()))['samples'] if sim else '-'} instruct samples of the world. Figure 3's "
            f"caption gives {figures()['3']['numbers']}.\n",
            _table(["model", "LayerNorm sim.", "Finetuning sim."], rows)]
    if "fig3" in figs:
        text.append(f"\n![Figure 3]({figs['fig3']})\n")
    text.append("\n### Claims\n")
    text.append(verdict_block("t6_similarity", ev, paper))
    return "\n".join(text)


def _section_gradients(results, ev, paper, figs) -> str:
    ratios = results.get("gradients") or []
    rows = [[r["layer"], r["norm"], _num(r.get("mean_of_std_ratio"), 3), _num(r.get("var_of_mean_ratio"), 3)]
            for r in ratios]
    text = ["## Figure 4: LayerNorm gradients during training\n",
            f"The paper's Figure 4 has no numbers ({figures()['4']['note']}). Ours: the gradients of the tracked "
            "layers' norms, recorded at every step of the finetune and LayerNorm runs; ratios LayerNorm / "
            "finetune of the mean per-step standard deviation and of the variance of the per-step mean "
            "(layers counted from 0, so layer 10 is the 11th). The table is the first seed's; the verdict reads "
            "every seed:\n",
            _table(["layer", "norm", "std ratio", "var-of-mean ratio"], rows) if rows else "(not recorded)\n"]
    if "fig4" in figs:
        text.append(f"\n![Figure 4]({figs['fig4']})\n")
    text.append("\n### Claims\n")
    text.append(verdict_block("f4_gradient_variance", ev, paper))
    return "\n".join(text)


def _section_figures_without_numbers() -> str:
    rows = [[f"Fig. {k}", v["content"], "yes" if v["numbers"] else "no", v["note"]] for k, v in figures().items()]
    return "## The paper's figures\n\n" + _table(["figure", "content", "numbers in the text", "note"], rows,
                                                   numeric=False)


def _section_budget(results) -> str:
    jobs = results.get("jobs") or {}
    groups: dict[str, dict] = {}
    for key, rec in jobs.items():
        g = groups.setdefault(key.split("/")[0], {"count": 0, "planned": 0.0, "wall": 0.0, "cpu": 0.0})
        g["count"] += 1
        g["planned"] += rec.get("planned_s", 0.0)
        g["wall"] += rec.get("measured_s", 0.0)
        g["cpu"] += rec.get("cpu_s", 0.0)
    total = {k: sum(g[k] for g in groups.values()) for k in ("count", "planned", "wall", "cpu")}
    rows = [[name, g["count"], f"{g['planned'] / 60:.1f}", f"{g['wall'] / 60:.1f}", f"{g['cpu'] / 60:.1f}"]
            for name, g in [*groups.items(), ("total", total)]]
    return ("## Budget\n\nPlanned minutes (an idle 2-core CPU) against the measured wall clock and this process's CPU "
            "time (both threads counted; `lntune bench` workers not included). Other work on the same machine stretches "
            "the wall clock; jobs found already done (a resumed run, or cached towers) count 0:\n\n"
            + _table(["jobs", "count", "planned min", "wall min", "CPU min"], rows))


# ------------------------------------------------------------------------------------------- figures

def make_figures(results: dict, out: Path) -> dict:
    """Write the report's PNGs under out/figures; returns {name: relative path} of those written."""
    import matplotlib

    matplotlib.use("Agg")
    figs_dir = out / FIGURES
    figs_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    ev = our_evidence(results)
    if ev["main"]:
        _plot_table1(ev, figs_dir / "table1.png")
        written["table1"] = f"{FIGURES}/table1.png"
    if ev["subsets"]:
        _normalized_bars({"ours": ev["subsets"]}, SUBSET_TYPES, figs_dir / "fig2_subsets.png",
                         "score / best subset's score")
        written["fig2"] = f"{FIGURES}/fig2_subsets.png"
    if results.get("sweeps"):
        _plot_sweeps(results["sweeps"], figs_dir / "sweeps.png")
        written["sweeps"] = f"{FIGURES}/sweeps.png"
    if (results.get("params") or {}).get("measured"):
        _plot_table2(results, figs_dir / "table2.png")
        written["table2"] = f"{FIGURES}/table2.png"
    for name, source in (("fig3", out / "analysis" / "similarity.png"), ("fig4", out / "analysis" / "gradients.png")):
        if source.is_file():
            target = figs_dir / f"{name}_{source.stem}.png"
            shutil.copyfile(source, target)
            written[name] = f"{FIGURES}/{target.name}"
    return written


CHANCE_LINES = {"mme": [(300.0, "chance"), (200.0, "all 'yes'")], "pope": [(50.0, "chance")]}
"""Reference levels drawn on the Table 1 figure: MME perception of a random and of an all-"yes" answerer on the
world's four subtasks (two questions per image, scored 200 each), POPE accuracy of a random answerer."""


def _plot_table1(ev: dict, png: Path) -> None:
    """One panel per benchmark: each strategy's mean with its 95% interval, and the chance levels."""
    import matplotlib.pyplot as plt
    import numpy as np

    main, draws = ev["main"], ev["resampled"].get("main", {})
    names = [s for s in TABLE1_STRATEGIES if s in main]
    fig, axes = plt.subplots(1, len(BENCHMARKS), figsize=(3.0 * len(BENCHMARKS), 3.4))
    for ax, bench in zip(axes, BENCHMARKS):
        values = [main[s].get(bench, 0.0) for s in names]
        low, high = [], []
        for s, v in zip(names, values):
            d = np.asarray(draws.get(s, {}).get(bench, []), dtype=float)
            lo, hi = (np.percentile(d, [2.5, 97.5]) if d.size else (v, v))
            low.append(max(0.0, v - lo))
            high.append(max(0.0, hi - v))
        ax.bar(range(len(names)), values, yerr=[low, high], capsize=3, color=[f"C{i}" for i in range(len(names))])
        for level, label in CHANCE_LINES.get(bench, []):
            ax.axhline(level, color="k", ls="--" if label == "chance" else ":", lw=1)
            ax.text(len(names) - 0.5, level, label, fontsize=6, ha="right", va="bottom")
        top = max([v + h for v, h in zip(values, high)] + [level for level, _ in CHANCE_LINES.get(bench, [])])
        ax.set_ylim(0, 1.1 * top if top > 0 else 1.0)
        ax.set_xticks(range(len(names)), [NAMES[s] for s in names], rotation=45, ha="right", fontsize=7)
        ax.set_title(BENCH_LABELS[bench], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Table 1 in miniature: mean over seeds, 95% interval (seeds and questions resampled)", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _normalize(models: dict) -> dict:
    """Each benchmark divided by the best model's value on it (so the five share one axis)."""
    best = {b: max((m[b] for m in models.values() if b in m), default=0) for b in BENCHMARKS}
    return {n: {b: (m[b] / best[b] if best[b] else 0.0) for b in BENCHMARKS if b in m} for n, m in models.items()}


def _normalized_bars(panels: dict, order, png: Path, ylabel: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 3.4), squeeze=False)
    for ax, (title, models) in zip(axes[0], panels.items()):
        models = models if title.startswith("paper") else _normalize(models)
        names = [n for n in order if n in models]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs = [j + i * width for j in range(len(BENCHMARKS))]
            ax.bar(xs, [models[name].get(b, 0) for b in BENCHMARKS], width, label=NAMES.get(name, name))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(BENCHMARKS))], [BENCH_LABELS[b] for b in BENCHMARKS])
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _plot_sweeps(sweeps: dict, png: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for s in TABLE1_STRATEGIES:
        if s in sweeps:
            rows = sorted(sweeps[s]["rows"], key=lambda r: r["lr"])
            ax.plot([r["lr"] for r in rows], [r["metric"] for r in rows], marker="o", label=NAMES[s])
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("Flickr30k-style CIDEr")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _plot_table2(results: dict, png: Path) -> None:
    import matplotlib.pyplot as plt

    t2 = load_table("table2")
    measured = results["params"]["measured"]["strategies"]
    names = [s for s in TABLE1_STRATEGIES if s in measured]
    panels = 2 if results.get("bench") else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.4), squeeze=False)
    ax = axes[0][0]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [measured[s]["percent"] for s in names], 0.4, label="ours (measured)")
    ax.bar([x + 0.2 for x in xs], [t2["rows"][s]["params_percent_7b"] for s in names], 0.4, label="paper 7B")
    ax.set_yscale("log")
    ax.set_ylabel("% of parameters trained")
    ax.set_xticks(list(xs), [NAMES[s] for s in names], rotation=30, fontsize=7)
    ax.legend(fontsize=7)
    if panels == 2:
        bench = results["bench"]["rows"]
        ax = axes[0][1]
        ax.bar(list(xs), [bench.get(s, {}).get("peak_mem_mb", 0) for s in names])
        ax.set_ylabel(f"peak memory MB ({results['bench'].get('device')})")
        ax.set_xticks(list(xs), [NAMES[s] for s in names], rotation=30, fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
