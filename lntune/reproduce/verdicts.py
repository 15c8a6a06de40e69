"""One rule per paper claim: measured numbers in, a verdict out (reproduced / contradicted / inconclusive /
untestable).

    from lntune.reproduce.verdicts import RULES, judge
    verdict = judge("t6_similarity", evidence)      # evidence: lntune.reproduce.evidence.our_evidence(...)
    verdict.status, verdict.detail, verdict.interval, RULES["t6_similarity"].text

The rules read an *evidence* dict (built by lntune/reproduce/evidence.py from our runs, or from the paper's
own tables so each rule can be checked against the paper's numbers). Scores are the five benchmark numbers
of `scores(row)`; "relative gain" of a over b on some benchmarks is the mean over them of 100 * (a - b) / |b|
(a benchmark where b scored 0 is left out).

A comparative rule computes one *effect*, positive when the paper's claim holds (e.g. LayerNorm's mean relative
gain over finetune). On our evidence it is computed twice: on the point values (means over seeds) and on each
of the two-level bootstrap's draws (evidence["resampled"]: seeds and questions resampled, paired across models;
lntune/reproduce/resampled.py), whose 2.5th-97.5th percentiles are the effect's 95% interval. The verdict is
"reproduced" when the interval lies above 0, "contradicted" when it lies below 0, "inconclusive" when it holds 0.
The paper publishes no uncertainty, so on the paper's numbers (no "resampled" entry) the sign decides.
A rule about something measured exactly (parameter counts, the best of a sweep, peak memory) is "reproduced"
when the check holds and "contradicted" when it does not. A rule whose evidence is absent, or that the
miniature cannot test, says "untestable" and why. Each rule's text is shown in the report beside its verdict;
nothing is decided by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lntune.data.records import INSTRUCT_TYPES
from lntune.eval.bootstrap import percentile_interval
from lntune.eval.tasks.registry import EVAL_TASKS
from lntune.strategies import PAPER_STRATEGIES

REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE = "reproduced", "contradicted", "inconclusive", "untestable"
STATUSES = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE)
BENCHMARKS = EVAL_TASKS
CONVENTIONAL = ("vqav2", "coco", "flickr30k")
CAPTIONING = ("coco", "flickr30k")
TABLE1_STRATEGIES = PAPER_STRATEGIES
SUBSET_TYPES = INSTRUCT_TYPES
ROW_COLUMNS = ("mme_perception", "mme_cognition", "vqav2", "coco", "flickr30k", "pope_popular", "pope_random",
               "pope_adversarial")
INTERVAL_RULE = "reproduced if its 95% interval lies above 0, contradicted if below 0, inconclusive otherwise"


@dataclass
class Verdict:
    status: str
    detail: str  # the measured quantities the rule looked at, one line
    value: float | None = None  # the effect (comparative rules)
    interval: list[float] | None = None  # its 95% interval (our evidence only)


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


def relative_gain(a: dict, b: dict, benchmarks):
    """Mean over the shared benchmarks of 100 * (a - b) / |b|, leaving out those where b scored 0 (no ratio);
    None when no benchmark is left. Values may be numbers or arrays of bootstrap draws (then per draw)."""
    shared = [k for k in benchmarks if k in a and k in b]
    if not shared:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.stack([np.where(np.asarray(b[k]) != 0, 100.0 * (np.asarray(a[k]) - b[k]) / np.abs(b[k]), np.nan)
                          for k in shared])
    present = np.isfinite(terms)
    count = present.sum(axis=0)
    mean = np.where(count > 0, np.where(present, terms, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    if mean.ndim == 0:
        return None if np.isnan(mean) else float(mean)
    return mean


def _missing(evidence: dict, keys) -> str | None:
    for key in keys:
        if evidence.get(key) in (None, {}, []):
            return key
    return None


def by_interval(ev: dict, effect: Callable[[dict], object], what: str, unit: str = "") -> Verdict:
    """The verdict of a comparative rule: `effect(evidence)` > 0 when the paper's claim holds."""
    point = effect(ev)
    if point is None or not np.isfinite(point):
        return Verdict(UNTESTABLE, f"{what}: no value (a baseline scored 0 where a ratio is needed)")
    point = float(point)
    if "resampled" not in ev:  # the paper's numbers: no uncertainty published, the direction decides
        status = REPRODUCED if point > 0 else CONTRADICTED if point < 0 else INCONCLUSIVE
        return Verdict(status, f"{what} {point:+.2f}{unit}", point)
    try:
        draws = effect(ev["resampled"])
    except (KeyError, TypeError):  # no draws for a model the rule reads
        draws = None
    interval = percentile_interval(draws, point) if draws is not None and np.ndim(draws) else None
    if interval is None:
        return Verdict(INCONCLUSIVE, f"{what} {point:+.2f}{unit}, no interval (no bootstrap draws)", point)
    low, high = interval
    status = REPRODUCED if low > 0 else CONTRADICTED if high < 0 else INCONCLUSIVE
    return Verdict(status, f"{what} {point:+.2f}{unit} [95% CI {low:+.2f}, {high:+.2f}]", point, interval)


def _exact(holds: bool, detail: str) -> Verdict:
    return Verdict(REPRODUCED if holds else CONTRADICTED, detail)


def _need(group: dict, names, what: str) -> Verdict | None:
    missing = [n for n in names if n not in group]
    return Verdict(UNTESTABLE, f"{', '.join(missing)} {what}") if missing else None


# ---------------------------------------------------------------------------------------------- rules

RIVALS = ("finetune", "lora", "attn-qv", "attn-mlp")
BEST_TASKS = ("coco", "flickr30k", "vqav2", "pope")


def _gain_over(candidate: str, baseline: str, benchmarks=BENCHMARKS):
    def decide(ev):
        missing = _need(ev["main"], (candidate, baseline), "not evaluated")
        return missing or by_interval(ev, lambda e: relative_gain(e["main"][candidate], e["main"][baseline], benchmarks),
                                      f"mean relative gain of {candidate} over {baseline} on {len(benchmarks)} benchmarks",
                                      "%")
    return decide


def _smallest(values):
    """Element-wise minimum of numbers or arrays; None when one is None."""
    if any(v is None for v in values):
        return None
    return values[0] if len(values) == 1 else np.minimum.reduce([np.asarray(v, dtype=float) for v in values])


def _layernorm_best(ev):
    rivals = [s for s in RIVALS if s in ev["main"]]
    missing = _need(ev["main"], ["layernorm"], "not evaluated")
    if missing or not rivals:
        return missing or Verdict(UNTESTABLE, "no rival strategy was evaluated")
    return by_interval(ev, lambda e: _smallest([relative_gain(e["main"]["layernorm"], e["main"][r], BEST_TASKS)
                                                for r in rivals]),
                       f"smallest mean relative gain of LayerNorm over {', '.join(rivals)} on MSCOCO, Flickr30k, "
                       "VQAv2, POPE", "%")


def _conversation_best(ev):
    missing = _need(ev["subsets"], SUBSET_TYPES, "subset not evaluated")
    others = [t for t in SUBSET_TYPES if t != "conversation"]
    return missing or by_interval(
        ev, lambda e: _smallest([relative_gain(e["subsets"]["conversation"], e["subsets"][t], BENCHMARKS) for t in others]),
        f"smallest mean relative gain of the conversation subset over {', '.join(others)}", "%")


def _captioning_and_mme(group: str, model: str, baseline: str, caption_margin: float, mme_margin: float, what: str):
    """min(captioning gain + caption_margin, MME gain + mme_margin): above 0 when both conditions hold."""
    def decide(ev):
        missing = _need(ev[group], (model, baseline), "missing")
        return missing or by_interval(ev, lambda e: _smallest([
            _plus(relative_gain(e[group][model], e[group][baseline], CAPTIONING), caption_margin),
            _plus(relative_gain(e[group][model], e[group][baseline], ("mme",)), mme_margin)]), what, "%")
    return decide


def _plus(value, margin):
    return None if value is None else value + margin


def _layernorm_vs_connector(ev):
    missing = _need(ev["table4"], ("layernorm+connector", "connector", "layernorm"), "model missing")

    def effect(e):
        t4 = e["table4"]
        full = t4["layernorm+connector"]
        return _smallest([_minus(relative_gain(t4["layernorm"], full, keys), relative_gain(t4["connector"], full, keys))
                          for keys in (CONVENTIONAL, ("mme",))])
    return missing or by_interval(ev, effect, "smaller of (connector-only's drop - LayerNorm-only's drop) on the "
                                              "conventional tasks and on MME, drops relative to LayerNorm+connector", "%")


def _minus(a, b):
    return None if a is None or b is None else a - b


def _aligned_better(ev):
    pairs = [s for s in ("finetune", "layernorm") if s in ev["table5"] and s in ev["main"]]
    if not pairs:
        return Verdict(UNTESTABLE, "no strategy was run on both towers")
    return by_interval(ev, lambda e: _smallest([relative_gain(e["main"][s], e["table5"][s], BENCHMARKS) for s in pairs]),
                       f"smallest mean relative gain of the aligned over the classification tower ({', '.join(pairs)})",
                       "%")


def _similarity(ev):
    missing = _need(ev["similarity"], ("layernorm", "finetune"), "similarity not measured")
    return missing or by_interval(ev, lambda e: e["similarity"]["finetune"] - e["similarity"]["layernorm"],
                                  "finetune - LayerNorm mean layer similarity")


def _gradient_variance(ev):
    value = ev["gradients"].get("mean_log_ratio")
    if value is None:
        return Verdict(UNTESTABLE, "no (layer, norm) gradient series shared by both runs")
    return by_interval(ev, lambda e: -e["gradients"]["mean_log_ratio"],
                       "-mean log(LayerNorm / finetune gradient std ratio) over the tracked norms")


A1_RANGE = (6e-4, 2e-3)


def _lr_range(ev):
    best = {s: ev["sweeps"][s]["best_lr"] for s in ("layernorm", "layernorm-simple") if s in ev["sweeps"]}
    if not best:
        return Verdict(UNTESTABLE, "no LayerNorm sweep")
    inside = [s for s, lr in best.items() if A1_RANGE[0] <= lr <= A1_RANGE[1]]
    return _exact(len(inside) == len(best), "best learning rate " + ", ".join(f"{s} {lr:.0e}" for s, lr in best.items()))


def spread(metrics):
    """(max - min) / max of a sweep's selection metric over its learning rates (numbers or arrays of draws)."""
    stacked = np.stack([np.asarray(m, dtype=float) for m in metrics])
    top = stacked.max(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(top > 0, (top - stacked.min(axis=0)) / np.where(top > 0, top, 1.0), np.nan)
    if value.ndim == 0:
        return None if np.isnan(value) else float(value)
    return value


def _lr_sensitivity(ev):
    sweeps = {s: v for s, v in ev["sweeps"].items() if len(v["metrics"]) >= 2}
    norm = [s for s in ("layernorm", "layernorm-simple") if s in sweeps]
    if "finetune" not in sweeps or not norm:
        return Verdict(UNTESTABLE, "finetune or LayerNorm has no sweep of two or more learning rates")
    return by_interval(ev, lambda e: _smallest([_minus(spread(e["sweeps"][s]["metrics"]),
                                                       spread(e["sweeps"]["finetune"]["metrics"])) for s in norm]),
                       "smallest (norm strategy - finetune) relative spread (max-min)/max of Flickr30k CIDEr over the grid")


def _mme_cognition(ev):
    cognition = ev.get("mme_cognition") or {}
    if "layernorm" not in cognition or "finetune" not in cognition:
        return Verdict(UNTESTABLE, "no MME cognition scores: the synthetic world has no cognition subtask "
                                   "(commonsense, numerical, translation, code)")
    return by_interval(ev, lambda e: e["mme_cognition"]["finetune"] - e["mme_cognition"]["layernorm"],
                       "finetune - LayerNorm MME cognition")


def _chat_better(ev):
    pairs = ev.get("llm_pairs") or {}
    if not pairs:
        return Verdict(UNTESTABLE, "one LLM only (SmolLM2-135M-Instruct); the claim needs a chat and a base LLM of "
                                   "the same size")

    def effect(e):
        gaps = []
        for pair in e["llm_pairs"].values():
            mean = {kind: {b: sum(s[b] for s in models.values()) / len(models) for b in ("mme", "pope")}
                    for kind, models in pair.items()}
            gaps += [mean["chat"][b] - mean["base"][b] for b in ("mme", "pope")]
        return _smallest(gaps)
    return by_interval(ev, effect, "smallest chat - base mean (over strategies) on MME and POPE")


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
    return _exact(matched == checked == 12, detail)


def _param_order(ev):
    counts = ev["trainable"]
    if any(s not in counts for s in ("layernorm", "lora", "layernorm-simple")):
        return Verdict(UNTESTABLE, "trainable counts missing")
    fewer = 100.0 * (1 - counts["layernorm"] / counts["lora"])
    smallest = counts["layernorm-simple"] == min(counts.values())
    detail = f"LayerNorm trains {fewer:.1f}% fewer parameters than LoRA; LayerNorm-simple is " \
             f"{'' if smallest else 'not '}the smallest of {len(counts)}"
    return _exact(counts["layernorm"] < counts["lora"] and smallest, detail)


def _memory_order(ev):
    mem = ev["memory"]
    if any(s not in mem for s in ("layernorm", "lora", "layernorm-simple", "finetune")):
        return Verdict(UNTESTABLE, "memory not measured for layernorm, lora, layernorm-simple and finetune")
    less = 100.0 * (1 - mem["layernorm"] / mem["lora"]) if mem["lora"] != float("inf") else None
    order = mem["layernorm-simple"] <= mem["layernorm"] < mem["lora"] and mem["finetune"] == max(mem.values())
    detail = (f"LayerNorm uses {less:.1f}% less than LoRA" if less is not None else "LoRA ran out of memory") + \
             f"; LayerNorm-simple {'<=' if mem['layernorm-simple'] <= mem['layernorm'] else '>'} LayerNorm; " \
             f"finetune {'is' if mem['finetune'] == max(mem.values()) else 'is not'} the largest"
    return _exact(order, detail)


def _memory_gpu(ev):
    gpu = ev.get("gpu_memory") or {}
    if gpu:
        return Verdict(REPRODUCED, "measured: " + ", ".join(f"{k} {v}" for k, v in gpu.items()))
    predicted = ev.get("gpu_memory_predicted") or {}
    needs = ("needs a CUDA GPU with the 7B/13B shapes (`lntune bench --preset llava-llama2-7b --random-init`); "
             "this run had none")
    if not predicted:
        return Verdict(UNTESTABLE, needs)
    paper = ev.get("gpu_memory_paper") or {}
    parts = []
    for scale, by_strategy in predicted.items():
        pairs = [f"{s} {gb:.1f}" + (f" (paper {paper[scale][s]})" if s in paper.get(scale, {}) else "")
                 for s, gb in by_strategy.items()]
        parts.append(f"{scale.upper()}: " + ", ".join(pairs))
    return Verdict(UNTESTABLE, f"{needs}; predicted by the memory model, not measured, in GB: " + "; ".join(parts))


def _interval(quantity: str) -> str:
    return f"the effect is {quantity}; {INTERVAL_RULE}"


RULES: dict[str, Rule] = {
    "t1_layernorm_vs_finetune": Rule(
        _interval("LayerNorm's mean relative gain over finetune on the 5 benchmarks"), ("main",),
        _gain_over("layernorm", "finetune")),
    "t1_layernorm_best": Rule(
        _interval("the smallest, over finetune, LoRA, Attn-QV and Attn-MLP, of LayerNorm's mean relative gain over "
                  "it on MSCOCO, Flickr30k, VQAv2 and POPE"), ("main",), _layernorm_best),
    "t1_layernorm_vs_lora": Rule(
        _interval("LayerNorm's mean relative gain over LoRA on the 5 benchmarks"), ("main",),
        _gain_over("layernorm", "lora")),
    "t1_simple_vs_lora": Rule(
        _interval("LayerNorm-simple's mean relative gain over LoRA on the 5 benchmarks"), ("main",),
        _gain_over("layernorm-simple", "lora")),
    "t1_simple_vs_finetune": Rule(
        _interval("LayerNorm-simple's mean relative gain over finetune on VQAv2, MSCOCO and Flickr30k"), ("main",),
        _gain_over("layernorm-simple", "finetune", CONVENTIONAL)),
    "t1_mme_cognition": Rule(
        _interval("finetune's MME cognition minus LayerNorm's") + "; untestable without cognition subtasks",
        (), _mme_cognition),
    "t1_chat_llm_better": Rule(
        _interval("the smaller of the chat-minus-base differences on MME and POPE, each averaged over the tuning "
                  "strategies") + "; untestable with a single LLM", (), _chat_better),
    "t2_params_presets": Rule(
        "exact: reproduced if all 12 percentages computed on the 7B/13B meta-device presets (LoRA rank 64) round to "
        "the printed ones, else contradicted", ("presets", "presets_paper", "presets_decimals"), _params_presets),
    "t2_param_order": Rule(
        "exact: reproduced if LayerNorm trains fewer parameters than LoRA and LayerNorm-simple the fewest of all, "
        "else contradicted", ("trainable",), _param_order),
    "t2_memory_order": Rule(
        "exact (one measurement per strategy): reproduced if peak training memory is LayerNorm-simple <= LayerNorm "
        "< LoRA and finetune the largest, else contradicted", ("memory",), _memory_order),
    "t2_memory_gpu": Rule(
        "untestable without a CUDA GPU running the 7B/13B shapes; reproduced only from such a measurement",
        (), _memory_gpu),
    "f2_conversation_best": Rule(
        _interval("the smaller of the conversation subset's mean relative gains over the detail and the "
                  "complex-reasoning subsets on the 5 benchmarks"), ("subsets",), _conversation_best),
    "t3_less_is_more": Rule(
        _interval("min(captioning gain, MME gain + 10%), the relative gains of LayerNorm on the conversation subset "
                  "over finetune on the full mix (above 0: it wins on captioning and loses at most 10% on MME)"),
        ("table3",), _captioning_and_mme("table3", "layernorm-conv", "finetune-full", 0.0, 10.0,
                                         "min(captioning gain, MME gain + 10%) of LayerNorm-conversation over "
                                         "finetune-full")),
    "t3_subset_vs_full": Rule(
        _interval("min(captioning gain + 15%, MME gain + 15%), the relative gains of LayerNorm on the conversation "
                  "subset over LayerNorm on the full mix (above 0: within 15% on both)"),
        ("table3",), _captioning_and_mme("table3", "layernorm-conv", "layernorm-full", 15.0, 15.0,
                                         "min(captioning gain + 15%, MME gain + 15%) of LayerNorm-conversation over "
                                         "LayerNorm-full")),
    "t4_layernorm_vs_connector": Rule(
        _interval("the smaller, over the three conventional tasks and MME, of connector-only's drop minus "
                  "LayerNorm-only's drop (relative to LayerNorm+connector)"), ("table4",), _layernorm_vs_connector),
    "t5_unaligned_layernorm": Rule(
        _interval("min(captioning gain, MME gain + 10%), the relative gains of LayerNorm over finetune on the "
                  "classification-pretrained tower"),
        ("table5",), _captioning_and_mme("table5", "layernorm", "finetune", 0.0, 10.0,
                                         "min(captioning gain, MME gain + 10%) of LayerNorm over finetune, "
                                         "classification tower")),
    "t5_aligned_better": Rule(
        _interval("the smaller, over finetune and LayerNorm, of the mean relative gain of the language-aligned tower's "
                  "model over the classification tower's on the 5 benchmarks"), ("table5", "main"), _aligned_better),
    "t6_similarity": Rule(
        _interval("finetune's mean layer-to-layer similarity minus LayerNorm's (seeds resampled)"),
        ("similarity",), _similarity),
    "f4_gradient_variance": Rule(
        _interval("minus the mean over the tracked norms of log(LayerNorm / finetune ratio of the mean per-step "
                  "gradient std) (seeds resampled)"), ("gradients",), _gradient_variance),
    "a1_lr_range": Rule(
        "exact: reproduced if the best swept learning rate of LayerNorm and LayerNorm-simple lies in [6e-4, 2e-3], "
        "else contradicted; untestable without a sweep", ("sweeps",), _lr_range),
    "lr_sensitivity": Rule(
        _interval("the smaller, over LayerNorm and LayerNorm-simple, of its relative spread (max-min)/max of the "
                  "Flickr30k CIDEr over the grid minus finetune's (test images resampled)")
        + "; untestable without a sweep", ("sweeps",), _lr_sensitivity),
}


def judge(claim_id: str, evidence: dict) -> Verdict:
    """Apply the claim's rule; 'untestable' (naming what is missing) when its evidence is absent."""
    rule = RULES[claim_id]
    missing = _missing(evidence, rule.needs)
    if missing:
        return Verdict(UNTESTABLE, f"no {missing} results in this run")
    return rule.decide(evidence)
