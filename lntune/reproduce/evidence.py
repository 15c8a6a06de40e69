"""Evidence for the verdict rules: from a reproduction's collected results, and from the paper's own tables.

    from lntune.reproduce.evidence import collect, our_evidence, paper_evidence
    results = collect(ctx)                 # everything the report shows, JSON-able (written to DIR/results.json)
    evidence = our_evidence(results)       # the dict lntune.reproduce.verdicts.judge reads (points + "resampled")
    paper_evidence()["t6_similarity"]      # [(label, evidence), ...]: the same rule applied to the paper's numbers

Our evidence holds, per model, the mean over its seeds of each score, and under "resampled" the same
structure with the two-level bootstrap's draws (lntune/reproduce/resampled.py), from which a rule's interval
comes. The paper publishes no uncertainty, so its evidence has no draws: the rule reads the direction only.
Applying each rule to the paper's own numbers shows how often the paper's claim holds under our rule
(e.g. per backbone of Table 1), which keeps the rules honest.
"""

from __future__ import annotations

from lntune.reproduce.paper_values import OOM, load_table
from lntune.reproduce.verdicts import SUBSET_TYPES, TABLE1_STRATEGIES, row_from_metrics, scores

RESAMPLES = 1000  # the two-level bootstrap's resamples (lntune/reproduce/resampled.py), seeded with 0


def collect(ctx) -> dict:
    """The reproduction's results in one JSON-able dict, from the jobs' returned values and the evaluations'
    per-question records (for the bootstrap draws, rounded to 4 decimals)."""
    from lntune.reproduce.experiments import model_evals
    from lntune.reproduce.resampled import resampled_scores
    from lntune.sweep import lr_tag

    r = ctx.results
    p = ctx.preset
    evals = {name: [(seed, key, d) for seed, key, d in runs if r.get(key)]
             for name, runs in model_evals(p, ctx.out).items()}
    evals = {name: runs for name, runs in evals.items() if runs}
    models = {name: [r[key] for _, key, _ in runs] for name, runs in evals.items()}
    sweeps, sweep_dirs = {}, {}
    for strategy in TABLE1_STRATEGIES:
        sweep = r.get(f"sweep/{strategy}")
        if sweep:
            sweeps[strategy] = {"rows": [{"lr": row["lr"], "metric": row["metric"]} for row in sweep["rows"]],
                                "best": {"lr": sweep["best"]["lr"], "metric": sweep["best"]["metric"]}}
            sweep_dirs.update({f"{strategy}@{row['lr']!r}": [ctx.out / "sweep" / strategy / lr_tag(row["lr"]) / "eval"]
                               for row in sweep["rows"]})
    resampled = resampled_scores({name: [d for _, _, d in runs] for name, runs in evals.items()}, RESAMPLES)
    sweep_draws = resampled_scores(sweep_dirs, RESAMPLES, tasks=("flickr30k",)) if sweep_dirs else {}
    similarity = r.get("similarity") or {}
    gradients = r.get("gradients") or {}
    reused = ctx.out / "table4" / "layernorm-no-connector" / "reused.json"
    return {
        "preset": p.name,
        "world": p.world,
        "lrs": {s: list(lrs) for s, lrs in p.lrs.items()},
        "seeds": {name: [seed for seed, _, _ in runs] for name, runs in evals.items()},
        "sizes": {"mix": p.mix, "mix_samples": p.mix_samples, "subset_samples": p.subset_samples, "stage2": list(p.stage2),
                  "stage1": list(p.stage1), "eval_limit": p.eval_limit, "sweep_limit": p.sweep_limit,
                  "similarity_samples": p.similarity_samples, "threads": ctx.threads, "seeds": list(p.seeds),
                  "resamples": RESAMPLES},
        "models": models,
        "resampled": _rounded(resampled),
        "sweeps": sweeps,
        "sweep_resampled": _rounded(sweep_draws),
        "params": r.get("params"),
        "bench": _bench_rows(r.get("bench")),
        "similarity": {name: {"mean_offdiag": s["mean_offdiag"], "layers": s["layers"], "samples": s["samples"]}
                       for name, s in (similarity.get("models") or {}).items()},
        "similarity_per_seed": similarity.get("per_seed") or {},
        "gradients": gradients.get("ratios"),
        "gradients_per_seed": gradients.get("per_seed") or [],
        "table4_norms_only_reused": reused.is_file(),
        "grounding": _grounding(ctx),
        "machine": machine(),
    }


def _grounding(ctx) -> dict:
    """{strategy: [per seed: POPE accuracy with true and shuffled images, the difference and its 95% interval]}
    from the Table 1 models' shuffled-image controls."""
    from lntune.reproduce.experiments import seed_tag

    out = {}
    for strategy in ctx.preset.strategies:
        for seed in ctx.preset.seeds:
            result = ctx.results.get(f"grounding/{strategy}/{seed_tag(seed)}")
            pope = ((result or {}).get("groups") or {}).get("pope")
            if pope:
                out.setdefault(strategy, []).append({
                    "seed": seed, "n": pope["true"]["n"], "true": pope["true"]["accuracy"],
                    "shuffled": pope["shuffled"]["accuracy"], "difference": pope["difference"]["accuracy"],
                    "interval": pope["difference"]["accuracy_interval"], "auc_true": pope["true"]["auc"],
                    "auc_shuffled": pope["shuffled"]["auc"]})
    return out


def machine() -> dict:
    """The CPU the reproduction ran on, in neutral words: model name, cores, and the matrix-relevant flags."""
    import os
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"cpu": name, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "bf16_matrix": bool({"avx512_bf16", "amx_bf16"} & flags)}


def _rounded(draws: dict) -> dict:
    return {name: {k: [round(float(v), 4) for v in values] for k, values in scores_.items()}
            for name, scores_ in draws.items()}


def _bench_rows(bench: dict | None) -> dict | None:
    if not bench:
        return None
    rows = {row["strategy"]: {"peak_mem_mb": row["peak_mem_mb"], "step_time_s": row["step_time_s"],
                              "trainable": row["trainable"]}
            for row in bench["rows"] if row["impl"] == "lntune" and not row.get("variant")}
    return {"device": bench.get("device"), "batch_size": bench.get("settings", {}).get("batch_size"), "rows": rows}


def model_scores(results: dict) -> dict[str, dict]:
    """{model: its five scores, each the mean over its seeds}."""
    return {name: mean_scores([scores(row_from_metrics(m)) for m in runs]) for name, runs in results["models"].items()}


def mean_scores(per_seed: list[dict]) -> dict:
    shared = [k for k in per_seed[0] if all(k in s for s in per_seed)]
    return {k: sum(s[k] for s in per_seed) / len(per_seed) for k in shared}


def _experiments(models: dict) -> dict:
    """The model groups the rules read, from {model: scores} (points or resampled arrays alike)."""
    main = {s: models[s] for s in TABLE1_STRATEGIES if s in models}
    return {
        "main": main,
        "subsets": {t: models[f"subset-{t}"] for t in SUBSET_TYPES if f"subset-{t}" in models},
        "table3": {k: v for k, v in {"layernorm-conv": models.get("subset-conversation"),
                                     "finetune-full": main.get("finetune"),
                                     "layernorm-full": main.get("layernorm")}.items() if v},
        "table4": {k: v for k, v in {"layernorm+connector": main.get("layernorm"),
                                     "connector": models.get("table4-connector"),
                                     "layernorm": models.get("table4-layernorm")}.items() if v},
        "table5": {s: models[f"table5-{s}"] for s in ("finetune", "layernorm") if f"table5-{s}" in models},
    }


def our_evidence(results: dict) -> dict:
    """The evidence dict of verdicts.judge from `collect`'s results; its "resampled" entry holds the same
    groups with bootstrap draws (numpy arrays) in place of the point values."""
    import numpy as np

    from lntune.reproduce.resampled import seed_resampled

    models = model_scores(results)
    cognition = {s: [row_from_metrics(m).get("mme_cognition") for m in results["models"][s]]
                 for s in TABLE1_STRATEGIES if s in results["models"]}
    t2 = load_table("table2")
    params = results.get("params") or {}
    presets = {scale: {s: v["percent"] for s, v in table["strategies"].items()}
               for scale, table in (params.get("presets") or {}).items()}
    bench = results.get("bench") or {}
    similarity = results.get("similarity_per_seed") or {}
    log_ratios = [_mean_log_ratio(r["ratios"]) for r in results.get("gradients_per_seed") or []]
    log_ratios = [v for v in log_ratios if v is not None]
    sweeps = {s: {"best_lr": v["best"]["lr"], "lrs": [r["lr"] for r in v["rows"]],
                  "metrics": [r["metric"] for r in v["rows"]]} for s, v in (results.get("sweeps") or {}).items()}
    draws = {name: {k: np.asarray(v) for k, v in d.items()} for name, d in (results.get("resampled") or {}).items()}
    sweep_draws = results.get("sweep_resampled") or {}
    resampled = {
        **_experiments({name: d for name, d in draws.items() if d}),
        "similarity": {s: seed_resampled(v) for s, v in similarity.items() if v},
        "gradients": {"mean_log_ratio": seed_resampled(log_ratios)} if log_ratios else {},
        "sweeps": {s: {"metrics": [np.asarray(sweep_draws[f"{s}@{lr!r}"]["flickr30k"]) for lr in v["lrs"]]}
                   for s, v in sweeps.items() if all(f"{s}@{lr!r}" in sweep_draws for lr in v["lrs"])},
    }
    return {
        **_experiments(models),
        "mme_cognition": {s: sum(v) / len(v) for s, v in cognition.items() if v and None not in v},
        "trainable": {s: v["trainable"] for s, v in ((params.get("measured") or {}).get("strategies") or {}).items()},
        "presets": presets,
        "presets_paper": _paper_percents(t2),
        "presets_decimals": t2["params_decimals"],
        "memory": {s: v["peak_mem_mb"] for s, v in (bench.get("rows") or {}).items()},
        "gpu_memory": {},
        "gpu_memory_predicted": params.get("predicted_gb") or {},
        "gpu_memory_paper": {scale: {s: row[f"memory_gb_{scale}"] for s, row in t2["rows"].items()}
                             for scale in ("7b", "13b")},
        "similarity": {s: sum(v) / len(v) for s, v in similarity.items() if v} or
                      {s: v["mean_offdiag"] for s, v in (results.get("similarity") or {}).items()},
        "gradients": {"ratios": results.get("gradients") or [],
                      "mean_log_ratio": sum(log_ratios) / len(log_ratios) if log_ratios else None}
        if results.get("gradients") else {},
        "sweeps": sweeps,
        "resampled": resampled,
    }


def _mean_log_ratio(ratios: list[dict]) -> float | None:
    """Mean over the tracked norms of log(LayerNorm / finetune gradient std ratio); below 0: LayerNorm's is smaller."""
    import math

    values = [math.log(r["mean_of_std_ratio"]) for r in ratios if (r.get("mean_of_std_ratio") or 0) > 0]
    return sum(values) / len(values) if values else None


def _paper_percents(t2: dict) -> dict:
    return {"7b": {s: row["params_percent_7b"] for s, row in t2["rows"].items()},
            "13b": {s: row["params_percent_13b"] for s, row in t2["rows"].items()}}


def _memory(t2: dict, scale: str) -> dict:
    return {s: (float("inf") if row[f"memory_gb_{scale}"] == OOM else row[f"memory_gb_{scale}"])
            for s, row in t2["rows"].items()}


def paper_evidence() -> dict[str, list[tuple[str, dict]]]:
    """{claim id: [(label, evidence)]}: the paper's tables as evidence, for the claims they bear on."""
    t1, t2, t3, t4, t5, t6, a1 = (load_table(n) for n in ("table1", "table2", "table3", "table4", "table5", "table6",
                                                          "tableA1"))
    out: dict[str, list[tuple[str, dict]]] = {}
    for backbone, rows in t1["backbones"].items():
        main = {s: scores(row) for s, row in rows.items()}
        ev = {"main": main, "mme_cognition": {s: row["mme_cognition"] for s, row in rows.items()}}
        for claim in ("t1_layernorm_vs_finetune", "t1_layernorm_best", "t1_layernorm_vs_lora", "t1_simple_vs_lora",
                      "t1_simple_vs_finetune", "t1_mme_cognition"):
            out.setdefault(claim, []).append((backbone, ev))
    chat_pairs = {scale: {"base": {s: scores(r) for s, r in t1["backbones"][f"MM-LLaMA2-{scale}"].items()},
                          "chat": {s: scores(r) for s, r in t1["backbones"][f"MM-LLaMA2-Chat-{scale}"].items()}}
                  for scale in ("7B", "13B")}
    out["t1_chat_llm_better"] = [(f"LLaMA2 vs LLaMA2-Chat {scale}", {"llm_pairs": {scale: pair}})
                                 for scale, pair in chat_pairs.items()]
    percents = _paper_percents(t2)
    for scale in ("7b", "13b"):
        out.setdefault("t2_param_order", []).append((scale.upper(), {"trainable": percents[scale]}))
        out.setdefault("t2_memory_order", []).append((scale.upper(), {"memory": _memory(t2, scale)}))
    for backbone, rows in t3["backbones"].items():
        ev = {"table3": {"layernorm-conv": scores(rows["layernorm-conv20k"]),
                         "finetune-full": scores(rows["finetune-80k"]), "layernorm-full": scores(rows["layernorm-80k"])}}
        out.setdefault("t3_less_is_more", []).append((backbone, ev))
        out.setdefault("t3_subset_vs_full", []).append((backbone, ev))
    for backbone, rows in t4["backbones"].items():
        out.setdefault("t4_layernorm_vs_connector", []).append(
            (backbone, {"table4": {k: scores(v) for k, v in rows.items()}}))
    for backbone, rows in t5["backbones"].items():
        table5 = {k: scores(v) for k, v in rows.items()}
        aligned = {s: scores(t1["backbones"][backbone][s]) for s in ("finetune", "layernorm")}
        out.setdefault("t5_unaligned_layernorm", []).append((backbone, {"table5": table5}))
        out.setdefault("t5_aligned_better", []).append((backbone, {"table5": table5, "main": aligned}))
    for backbone, row in t6["rows"].items():
        out.setdefault("t6_similarity", []).append((backbone, {"similarity": dict(row)}))
    for row in a1["rows"]:
        if row["text_scale"] == "7B":
            best = row["lrs"][max(range(len(row["lrs"])), key=lambda i: row["flickr30k"][i])]
            out.setdefault("a1_lr_range", []).append(
                (f"Table A1 row '{row['label']}' (7B per the text)",
                 {"sweeps": {"layernorm-simple": {"best_lr": best, "lrs": row["lrs"], "metrics": row["flickr30k"]}}}))
    return out
