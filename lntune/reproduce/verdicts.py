"""One rule per paper claim: measured numbers in, a verdict out (reproduced / partly / not reproduced / untestable).

    from lntune.reproduce.verdicts import RULES, judge
    verdict = judge("t6_similarity", {"similarity": {"finetune": 0.62, "layernorm": 0.58}})
    verdict.status, verdict.detail, RULES["t6_similarity"].text

The rules read an *evidence* dict (built by lntune/reproduce/evidence.py from our runs, or from the paper's
own tables so each rule can be checked against the paper's numbers). Scores are the five benchmark numbers
of `scores(row)`; "relative gain" of a over b on some benchmarks is the mean over them of 100 * (a - b) / |b|
(a benchmark where b scored 0 is left out).
A rule whose evidence is absent says "untestable" and why. Thresholds are written into each rule's text, so
the report shows the rule beside the verdict; nothing is decided by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lntune.data.records import INSTRUCT_TYPES
from lntune.eval.tasks.registry import EVAL_TASKS
from lntune.strategies import PAPER_STRATEGIES

REPRODUCED, PARTLY, NOT, UNTESTABLE = "reproduced", "partly", "not reproduced", "untestable"
BENCHMARKS = EVAL_TASKS
CONVENTIONAL = ("vqav2", "coco", "flickr30k")
CAPTIONING = ("coco", "flickr30k")
TABLE1_STRATEGIES = PAPER_STRATEGIES
SUBSET_TYPES = INSTRUCT_TYPES
ROW_COLUMNS = ("mme_perception", "mme_cognition", "vqav2", "coco", "flickr30k", "pope_popular", "pope_random",
               "pope_adversarial")


@dataclass
class Verdict:
    status: str
    detail: str  # the measured quantities the rule looked at, one line


@dataclass
class Rule:
    text: str  # the rule, as shown in the report
    needs: tuple[str, ...]  # evidence keys it reads
    decide: Callable[[dict], Verdict]


# ---------------------------------------------------------------------------------------------- helpers

def scores(row: dict) -> dict:
    """The five benchmark scores of a Table-1-style row: MME = perception + cognition (cognition counts 0 when
    absent, as in the world which has no cognition subtask), VQAv2, the two CIDErs, POPE = mean accuracy of
    the splits present. A missing value stays missing."""
    out = {}
    if row.get("mme_perception") is not None:
        out["mme"] = row["mme_perception"] + (row.get("mme_cognition") or 0.0)
    for key in ("vqav2", "coco", "flickr30k"):
        if row.get(key) is not None:
            out[key] = row[key]
    pope = [row[k] for k in ("pope_popular", "pope_random", "pope_adversarial") if row.get(k) is not None]
    if pope:
        out["pope"] = sum(pope) / len(pope)
    return out


def row_from_metrics(metrics: dict) -> dict:
    """A Table-1-style row from lntune's {task: metrics} (lntune.eval.runner.evaluate's result)."""
    from lntune.eval.scores import Scores

    row = Scores.of(metrics).table1_row()
    return {column: row[column] for column in ROW_COLUMNS}


def mean_ranks(models: dict[str, dict], benchmarks=BENCHMARKS) -> dict[str, float]:
    """{model: mean over benchmarks of its rank (1 = best, ties share the mean rank)} over the benchmarks
    every model has."""
    shared = [b for b in benchmarks if all(b in s for s in models.values())]
    ranks = {name: 0.0 for name in models}
    for bench in shared:
        values = {name: s[bench] for name, s in models.items()}
        for name, value in values.items():
            better = sum(v > value for v in values.values())
            equal = sum(v == value for v in values.values())
            ranks[name] += better + (equal + 1) / 2
    return {name: (total / len(shared) if shared else float("nan")) for name, total in ranks.items()}


def relative_gain(a: dict, b: dict, benchmarks) -> float | None:
    """Mean over the shared benchmarks of 100 * (a - b) / |b|, leaving out those where b scored 0 (no ratio);
    None when no benchmark is left."""
    shared = [k for k in benchmarks if k in a and k in b and b[k] != 0]
    if not shared:
        return None
    return sum(100.0 * (a[k] - b[k]) / abs(b[k]) for k in shared) / len(shared)


def wins(a: dict, b: dict, benchmarks=BENCHMARKS) -> tuple[int, int]:
    shared = [k for k in benchmarks if k in a and k in b]
    return sum(a[k] > b[k] for k in shared), len(shared)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _missing(evidence: dict, keys) -> str | None:
    for key in keys:
        if evidence.get(key) in (None, {}, []):
            return key
    return None


# ---------------------------------------------------------------------------------------------- rules

def _layernorm_vs_finetune(ev):
    main = ev["main"]
    if "layernorm" not in main or "finetune" not in main:
        return Verdict(UNTESTABLE, "layernorm or finetune was not evaluated")
    ranks = mean_ranks(main)
    won, n = wins(main["layernorm"], main["finetune"])
    detail = f"mean rank LayerNorm {ranks['layernorm']:.2f} vs finetune {ranks['finetune']:.2f} " \
             f"(of {len(main)}); LayerNorm wins {won}/{n} benchmarks"
    if ranks["layernorm"] <= ranks["finetune"]:
        return Verdict(REPRODUCED, detail)
    return Verdict(PARTLY if won >= 2 else NOT, detail)


def _layernorm_best(ev):
    main = ev["main"]
    rivals = [s for s in ("finetune", "lora", "attn-qv", "attn-mlp") if s in main]
    if "layernorm" not in main or not rivals:
        return Verdict(UNTESTABLE, "layernorm or its rivals were not evaluated")
    tasks = ("coco", "flickr30k", "vqav2", "pope")
    best = [t for t in tasks if t in main["layernorm"] and all(main["layernorm"][t] > main[r].get(t, float("-inf"))
                                                              for r in rivals)]
    detail = f"LayerNorm is best of {1 + len(rivals)} on {len(best)}/4 ({', '.join(best) or 'none'})"
    return Verdict(REPRODUCED if len(best) >= 3 else PARTLY if best else NOT, detail)


def _gain_over(candidate: str, baseline: str):
    def decide(ev):
        main = ev["main"]
        if candidate not in main or baseline not in main:
            return Verdict(UNTESTABLE, f"{candidate} or {baseline} was not evaluated")
        gain = relative_gain(main[candidate], main[baseline], BENCHMARKS)
        won, n = wins(main[candidate], main[baseline])
        detail = f"mean relative gain {_pct(gain)} over {n} benchmarks; {candidate} wins {won}/{n}"
        if gain is not None and gain > 0:
            return Verdict(REPRODUCED, detail)
        return Verdict(PARTLY if won >= 2 else NOT, detail)
    return decide


def _simple_vs_finetune(ev):
    main = ev["main"]
    if "layernorm-simple" not in main or "finetune" not in main:
        return Verdict(UNTESTABLE, "layernorm-simple or finetune was not evaluated")
    won, n = wins(main["layernorm-simple"], main["finetune"], CONVENTIONAL)
    gain = relative_gain(main["layernorm-simple"], main["finetune"], CONVENTIONAL)
    detail = f"LayerNorm-simple wins {won}/{n} of VQAv2, MSCOCO, Flickr30k (mean relative gain {_pct(gain)})"
    return Verdict(REPRODUCED if won == n and n == 3 else PARTLY if won else NOT, detail)


def _mme_cognition(ev):
    cognition = ev.get("mme_cognition") or {}
    if "layernorm" not in cognition or "finetune" not in cognition:
        return Verdict(UNTESTABLE, "no MME cognition scores: the synthetic world has no cognition subtask "
                                   "(commonsense, numerical, translation, code)")
    ln, ft = cognition["layernorm"], cognition["finetune"]
    return Verdict(REPRODUCED if ln < ft else NOT, f"cognition LayerNorm {ln:.1f} vs finetune {ft:.1f}")


def _chat_better(ev):
    pairs = ev.get("llm_pairs") or {}
    if not pairs:
        return Verdict(UNTESTABLE, "one LLM only (SmolLM2-135M-Instruct); the claim needs a chat and a base LLM of "
                                   "the same size")
    held = {}
    for label, pair in pairs.items():
        mean = {kind: {b: sum(s[b] for s in models.values()) / len(models) for b in ("mme", "pope")}
                for kind, models in pair.items()}
        held[label] = [b for b in ("mme", "pope") if mean["chat"][b] > mean["base"][b]]
    detail = "; ".join(f"{label}: chat better on {', '.join(b) or 'neither'}" for label, b in held.items()) + \
        " (means over the tuning strategies)"
    wins_all = all(len(b) == 2 for b in held.values())
    return Verdict(REPRODUCED if wins_all else PARTLY if any(held.values()) else NOT, detail)


def _params_presets(ev):
    computed, printed, decimals = ev["presets"], ev["presets_paper"], ev["presets_decimals"]
    checked = matched = 0
    misses = []
    for scale, rows in printed.items():
        for strategy, value in rows.items():
            if strategy not in computed.get(scale, {}):
                continue
            checked += 1
            ours = round(computed[scale][strategy], decimals[strategy])
            if abs(ours - value) < 1e-9:
                matched += 1
            else:
                misses.append(f"{strategy} {scale} {ours} vs {value}")
    detail = f"{matched}/{checked} percentages equal the printed ones" + (f" (differ: {'; '.join(misses)})" if misses else "")
    if checked == 0:
        return Verdict(UNTESTABLE, "no preset was counted")
    return Verdict(REPRODUCED if matched == checked == 12 else PARTLY if matched * 2 >= checked else NOT, detail)


def _param_order(ev):
    counts = ev["trainable"]
    needed = ("layernorm", "lora", "layernorm-simple")
    if any(s not in counts for s in needed):
        return Verdict(UNTESTABLE, "trainable counts missing")
    fewer = 100.0 * (1 - counts["layernorm"] / counts["lora"])
    smallest = counts["layernorm-simple"] == min(counts.values())
    ln_below_lora = counts["layernorm"] < counts["lora"]
    detail = f"LayerNorm trains {fewer:.1f}% fewer parameters than LoRA; LayerNorm-simple is " \
             f"{'' if smallest else 'not '}the smallest of {len(counts)}"
    return Verdict(REPRODUCED if ln_below_lora and smallest else PARTLY if ln_below_lora or smallest else NOT, detail)


def _memory_order(ev):
    mem = ev["memory"]
    if any(s not in mem for s in ("layernorm", "lora", "layernorm-simple", "finetune")):
        return Verdict(UNTESTABLE, "memory not measured for layernorm, lora, layernorm-simple and finetune")
    less = 100.0 * (1 - mem["layernorm"] / mem["lora"]) if mem["lora"] != float("inf") else None
    order = mem["layernorm-simple"] <= mem["layernorm"] < mem["lora"] and mem["finetune"] == max(mem.values())
    detail = (f"LayerNorm uses {less:.1f}% less than LoRA" if less is not None else "LoRA ran out of memory") + \
             f"; LayerNorm-simple {'<=' if mem['layernorm-simple'] <= mem['layernorm'] else '>'} LayerNorm; " \
             f"finetune {'is' if mem['finetune'] == max(mem.values()) else 'is not'} the largest"
    if order:
        return Verdict(REPRODUCED, detail)
    return Verdict(PARTLY if mem["layernorm"] < mem["lora"] else NOT, detail)


def _memory_gpu(ev):
    gpu = ev.get("gpu_memory") or {}
    if not gpu:
        return Verdict(UNTESTABLE, "needs a CUDA GPU with the 7B/13B shapes "
                                   "(`lntune bench --preset llava-llama2-7b --random-init`); this run had none")
    return Verdict(REPRODUCED, "measured: " + ", ".join(f"{k} {v}" for k, v in gpu.items()))


def _conversation_best(ev):
    subsets = ev["subsets"]
    if any(t not in subsets for t in SUBSET_TYPES):
        return Verdict(UNTESTABLE, "not all three one-type subsets were evaluated")
    ranks = mean_ranks({t: subsets[t] for t in SUBSET_TYPES})
    order = sorted(SUBSET_TYPES, key=lambda t: ranks[t])
    detail = "mean ranks " + ", ".join(f"{t} {ranks[t]:.2f}" for t in order)
    if ranks["conversation"] == min(ranks.values()):
        return Verdict(REPRODUCED, detail)
    return Verdict(PARTLY if ranks["conversation"] < max(ranks.values()) else NOT, detail)


def _less_is_more(ev):
    t3 = ev["table3"]
    if "layernorm-conv" not in t3 or "finetune-full" not in t3:
        return Verdict(UNTESTABLE, "layernorm on the conversation subset or finetune on the full mix missing")
    return _captioning_and_mme(t3["layernorm-conv"], t3["finetune-full"], lambda c: c > 0, lambda m: m >= -10.0,
                               "captioning {caption}, MME {mme} (LayerNorm-conversation vs finetune-full)")


def _subset_vs_full(ev):
    t3 = ev["table3"]
    if "layernorm-conv" not in t3 or "layernorm-full" not in t3:
        return Verdict(UNTESTABLE, "layernorm on the conversation subset or on the full mix missing")
    return _captioning_and_mme(t3["layernorm-conv"], t3["layernorm-full"], lambda c: c >= -15.0, lambda m: m >= -15.0,
                               "captioning {caption}, MME {mme} (LayerNorm-conversation vs LayerNorm-full)")


def _layernorm_vs_connector(ev):
    t4 = ev["table4"]
    if any(k not in t4 for k in ("layernorm+connector", "connector", "layernorm")):
        return Verdict(UNTESTABLE, "one of the three Table 4 models is missing")
    full = t4["layernorm+connector"]
    drops = {name: (-relative_gain(t4[name], full, CONVENTIONAL), -relative_gain(t4[name], full, ("mme",)))
             for name in ("layernorm", "connector")
             if relative_gain(t4[name], full, CONVENTIONAL) is not None and relative_gain(t4[name], full, ("mme",)) is not None}
    if len(drops) < 2:
        return Verdict(UNTESTABLE, "a Table 4 model scored 0 where a ratio is needed")
    (ln_conv, ln_mme), (cn_conv, cn_mme) = drops["layernorm"], drops["connector"]
    ok = [ln_conv < cn_conv, ln_mme < cn_mme]
    detail = f"drop vs LayerNorm+connector: LayerNorm-only {ln_conv:.1f}% conventional / {ln_mme:.1f}% MME, " \
             f"connector-only {cn_conv:.1f}% / {cn_mme:.1f}%"
    return Verdict(REPRODUCED if all(ok) else PARTLY if any(ok) else NOT, detail)


def _unaligned_layernorm(ev):
    t5 = ev["table5"]
    if "layernorm" not in t5 or "finetune" not in t5:
        return Verdict(UNTESTABLE, "finetune or layernorm on the classification tower missing")
    return _captioning_and_mme(t5["layernorm"], t5["finetune"], lambda c: c > 0, lambda m: m >= -10.0,
                               "LayerNorm vs finetune on the unaligned tower: captioning {caption}, MME {mme}")


def _captioning_and_mme(model, baseline, caption_ok, mme_ok, template):
    """Reproduced if both relative gains over `baseline` pass their test, partly if one does, else not."""
    caption = relative_gain(model, baseline, CAPTIONING)
    mme = relative_gain(model, baseline, ("mme",))
    ok = [caption is not None and caption_ok(caption), mme is not None and mme_ok(mme)]
    detail = template.format(caption=_pct(caption), mme=_pct(mme))
    return Verdict(REPRODUCED if all(ok) else PARTLY if any(ok) else NOT, detail)


def _aligned_better(ev):
    t5, main = ev["table5"], ev["main"]
    pairs = [s for s in ("finetune", "layernorm") if s in t5 and s in main]
    if not pairs:
        return Verdict(UNTESTABLE, "no strategy was run on both towers")
    better = {s: wins(main[s], t5[s]) for s in pairs}
    held = [s for s, (won, n) in better.items() if n and won * 2 > n]
    detail = "; ".join(f"{s}: aligned tower wins {won}/{n}" for s, (won, n) in better.items())
    return Verdict(REPRODUCED if len(held) == len(pairs) == 2 else PARTLY if held else NOT, detail)


def _similarity(ev):
    sim = ev["similarity"]
    if "layernorm" not in sim or "finetune" not in sim:
        return Verdict(UNTESTABLE, "similarity not measured for both models")
    lower = 100.0 * (1 - sim["layernorm"] / sim["finetune"])
    detail = f"LayerNorm {sim['layernorm']:.3f} vs finetune {sim['finetune']:.3f} ({lower:.1f}% lower)"
    return Verdict(REPRODUCED if sim["layernorm"] < sim["finetune"] else NOT, detail)


def _gradient_variance(ev):
    ratios = [r["mean_of_std_ratio"] for r in ev["gradients"] if r.get("mean_of_std_ratio") is not None]
    if not ratios:
        return Verdict(UNTESTABLE, "no (layer, norm) gradient series shared by both runs")
    below = sum(r < 1 for r in ratios)
    detail = f"LayerNorm/finetune gradient std ratio < 1 for {below}/{len(ratios)} tracked norms " \
             f"(range {min(ratios):.2f}-{max(ratios):.2f})"
    return Verdict(REPRODUCED if below == len(ratios) else PARTLY if below * 2 >= len(ratios) else NOT, detail)


A1_RANGE = (6e-4, 2e-3)


def _lr_range(ev):
    best = {s: ev["sweeps"][s]["best_lr"] for s in ("layernorm", "layernorm-simple") if s in ev["sweeps"]}
    if not best:
        return Verdict(UNTESTABLE, "no LayerNorm sweep")
    inside = [s for s, lr in best.items() if A1_RANGE[0] <= lr <= A1_RANGE[1]]
    detail = "best learning rate " + ", ".join(f"{s} {lr:.0e}" for s, lr in best.items())
    return Verdict(REPRODUCED if len(inside) == len(best) else PARTLY if inside else NOT, detail)


def spread(metrics: list[float]) -> float | None:
    """(max - min) / max of a sweep's selection metric: how much the learning rate matters."""
    top = max(metrics)
    return (top - min(metrics)) / top if top > 0 else None


def _lr_sensitivity(ev):
    sweeps = ev["sweeps"]
    spreads = {s: spread(v["metrics"]) for s, v in sweeps.items() if len(v["metrics"]) >= 2}
    if "finetune" not in spreads or spreads["finetune"] is None:
        return Verdict(UNTESTABLE, "finetune has no sweep of two or more learning rates with a positive metric")
    norm = [s for s in ("layernorm", "layernorm-simple") if spreads.get(s) is not None]
    if not norm:
        return Verdict(UNTESTABLE, "no LayerNorm sweep of two or more learning rates")
    more = [s for s in norm if spreads[s] > spreads["finetune"]]
    detail = "relative spread of Flickr30k CIDEr over the grid: " + \
             ", ".join(f"{s} {spreads[s]:.2f}" for s in ["finetune", *norm])
    return Verdict(REPRODUCED if len(more) == len(norm) == 2 else PARTLY if more else NOT, detail)


RULES: dict[str, Rule] = {
    "t1_layernorm_vs_finetune": Rule(
        "reproduced if LayerNorm's mean rank over the 5 benchmarks (among the Table 1 strategies) is <= finetune's; "
        "partly if it beats finetune on >= 2 benchmarks; else not", ("main",), _layernorm_vs_finetune),
    "t1_layernorm_best": Rule(
        "reproduced if LayerNorm beats finetune, LoRA, Attn-QV and Attn-MLP on >= 3 of MSCOCO, Flickr30k, VQAv2, POPE; "
        "partly if on 1-2; else not", ("main",), _layernorm_best),
    "t1_layernorm_vs_lora": Rule(
        "reproduced if LayerNorm's mean relative gain over LoRA on the 5 benchmarks is > 0; partly if it wins >= 2; "
        "else not", ("main",), _gain_over("layernorm", "lora")),
    "t1_simple_vs_lora": Rule(
        "reproduced if LayerNorm-simple's mean relative gain over LoRA on the 5 benchmarks is > 0; partly if it wins "
        ">= 2; else not", ("main",), _gain_over("layernorm-simple", "lora")),
    "t1_simple_vs_finetune": Rule(
        "reproduced if LayerNorm-simple beats finetune on all of VQAv2, MSCOCO, Flickr30k; partly if on 1-2; else not",
        ("main",), _simple_vs_finetune),
    "t1_mme_cognition": Rule(
        "reproduced if LayerNorm's MME cognition is below finetune's; untestable without cognition subtasks",
        (), _mme_cognition),
    "t1_chat_llm_better": Rule(
        "reproduced if, averaged over the tuning strategies, the chat LLM's models beat the same-size base LLM's on "
        "both MME and POPE; partly if on one; untestable with a single LLM", (), _chat_better),
    "t2_params_presets": Rule(
        "reproduced if all 12 percentages computed on the 7B/13B meta-device presets (LoRA rank 64) round to the "
        "printed ones; partly if >= half do; else not", ("presets", "presets_paper", "presets_decimals"),
        _params_presets),
    "t2_param_order": Rule(
        "reproduced if LayerNorm trains fewer parameters than LoRA and LayerNorm-simple the fewest of all; partly if "
        "one of the two holds; else not", ("trainable",), _param_order),
    "t2_memory_order": Rule(
        "reproduced if peak training memory is LayerNorm-simple <= LayerNorm < LoRA and finetune the largest; partly "
        "if LayerNorm < LoRA; else not", ("memory",), _memory_order),
    "t2_memory_gpu": Rule(
        "untestable without a CUDA GPU running the 7B/13B shapes; reproduced only from such a measurement",
        (), _memory_gpu),
    "f2_conversation_best": Rule(
        "reproduced if the conversation subset's LayerNorm model has the best mean rank over the 5 benchmarks among "
        "the three equal-size subsets; partly if it is not the worst; else not", ("subsets",), _conversation_best),
    "t3_less_is_more": Rule(
        "reproduced if LayerNorm on the conversation subset beats finetune on the full mix on mean captioning CIDEr "
        "(relative gain > 0) and loses at most 10% on MME; partly if one holds; else not", ("table3",), _less_is_more),
    "t3_subset_vs_full": Rule(
        "reproduced if LayerNorm on the conversation subset is within 15% of LayerNorm on the full mix on both "
        "captioning and MME; partly if on one; else not", ("table3",), _subset_vs_full),
    "t4_layernorm_vs_connector": Rule(
        "reproduced if LayerNorm-only drops less than connector-only (relative to LayerNorm+connector) on both the "
        "three conventional tasks and MME; partly if on one; else not", ("table4",), _layernorm_vs_connector),
    "t5_unaligned_layernorm": Rule(
        "reproduced if, on the classification-pretrained tower, LayerNorm beats finetune on mean captioning CIDEr "
        "and loses at most 10% on MME; partly if one holds; else not", ("table5",), _unaligned_layernorm),
    "t5_aligned_better": Rule(
        "reproduced if finetune and LayerNorm on the language-aligned tower each beat their classification-tower "
        "counterpart on a majority of benchmarks; partly if one does; else not", ("table5", "main"), _aligned_better),
    "t6_similarity": Rule(
        "reproduced if LayerNorm's mean layer-to-layer similarity is lower than finetune's; else not",
        ("similarity",), _similarity),
    "f4_gradient_variance": Rule(
        "reproduced if the LayerNorm/finetune ratio of the mean per-step gradient std is < 1 for every tracked norm; "
        "partly if for at least half; else not", ("gradients",), _gradient_variance),
    "a1_lr_range": Rule(
        "reproduced if the best swept learning rate of LayerNorm and LayerNorm-simple lies in [6e-4, 2e-3]; partly "
        "if for one; else not", ("sweeps",), _lr_range),
    "lr_sensitivity": Rule(
        "reproduced if the relative spread (max-min)/max of the sweep metric is larger for both LayerNorm and "
        "LayerNorm-simple than for finetune; partly if for one; else not", ("sweeps",), _lr_sensitivity),
}


def judge(claim_id: str, evidence: dict) -> Verdict:
    """Apply the claim's rule; 'untestable' (naming what is missing) when its evidence is absent."""
    rule = RULES[claim_id]
    missing = _missing(evidence, rule.needs)
    if missing:
        return Verdict(UNTESTABLE, f"no {missing} results in this run")
    return rule.decide(evidence)
