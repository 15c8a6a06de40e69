"""Evidence for the verdict rules: from a reproduction's collected results, and from the paper's own tables.

    from lntune.reproduce.evidence import collect, our_evidence, paper_evidence
    results = collect(ctx)                 # everything the report shows, JSON-able (written to DIR/results.json)
    evidence = our_evidence(results)       # the dict lntune.reproduce.verdicts.judge reads
    paper_evidence()["t6_similarity"]      # [(label, evidence), ...]: the same rule applied to the paper's numbers

Applying each rule to the paper's own numbers shows how often the paper's claim holds under our rule
(e.g. per backbone of Table 1), which keeps the rules honest.
"""

from __future__ import annotations

from lntune.reproduce.paper_values import OOM, load_table
from lntune.reproduce.verdicts import SUBSET_TYPES, TABLE1_STRATEGIES, row_from_metrics, scores

# The evaluated models of a reproduction: result name -> the job that evaluated it.
MODEL_JOBS = {
    **{s: f"eval/{s}" for s in TABLE1_STRATEGIES},
    **{f"subset-{t}": f"eval/subset-{t}" for t in SUBSET_TYPES},
    "table4-connector": "eval/table4-connector",
    "table4-layernorm": "eval/table4-layernorm",
    "table5-finetune": "eval/table5-finetune",
    "table5-layernorm": "eval/table5-layernorm",
}


def collect(ctx) -> dict:
    """The reproduction's results in one JSON-able dict, from the jobs' returned values."""
    r = ctx.results
    models = {name: r[key] for name, key in MODEL_JOBS.items() if r.get(key)}
    sweeps = {}
    for strategy in TABLE1_STRATEGIES:
        sweep = r.get(f"sweep/{strategy}")
        if sweep:
            sweeps[strategy] = {"rows": [{"lr": row["lr"], "metric": row["metric"]} for row in sweep["rows"]],
                                "best": {"lr": sweep["best"]["lr"], "metric": sweep["best"]["metric"]}}
    similarity = r.get("similarity") or {}
    reused = ctx.out / "table4" / "layernorm-no-connector" / "reused.json"
    p = ctx.preset
    return {
        "preset": p.name,
        "world": p.world,
        "lrs": list(p.lrs),
        "sizes": {"mix_samples": p.mix_samples, "subset_samples": p.subset_samples, "stage2": list(p.stage2),
                  "stage1": list(p.stage1), "eval_limit": p.eval_limit, "sweep_limit": p.sweep_limit,
                  "similarity_samples": p.similarity_samples, "threads": ctx.threads},
        "models": models,
        "sweeps": sweeps,
        "params": r.get("params"),
        "bench": _bench_rows(r.get("bench")),
        "similarity": {name: {"mean_offdiag": s["mean_offdiag"], "layers": s["layers"], "samples": s["samples"]}
                       for name, s in (similarity.get("models") or {}).items()},
        "gradients": (r.get("gradients") or {}).get("ratios"),
        "table4_norms_only_reused": reused.is_file(),
    }


def _bench_rows(bench: dict | None) -> dict | None:
    if not bench:
        return None
    rows = {row["strategy"]: {"peak_mem_mb": row["peak_mem_mb"], "step_time_s": row["step_time_s"],
                              "trainable": row["trainable"]}
            for row in bench["rows"] if row["impl"] == "lntune" and not row.get("variant")}
    return {"device": bench.get("device"), "batch_size": bench.get("settings", {}).get("batch_size"), "rows": rows}


def our_evidence(results: dict) -> dict:
    """The evidence dict of verdicts.judge from `collect`'s results."""
    models = {name: scores(row_from_metrics(m)) for name, m in results["models"].items()}
    main = {s: models[s] for s in TABLE1_STRATEGIES if s in models}
    cognition = {s: row_from_metrics(results["models"][s]).get("mme_cognition") for s in main}
    t2 = load_table("table2")
    params = results.get("params") or {}
    presets = {scale: {s: v["percent"] for s, v in table["strategies"].items()}
               for scale, table in (params.get("presets") or {}).items()}
    bench = results.get("bench") or {}
    return {
        "main": main,
        "mme_cognition": {s: v for s, v in cognition.items() if v is not None},
        "trainable": {s: v["trainable"] for s, v in ((params.get("measured") or {}).get("strategies") or {}).items()},
        "presets": presets,
        "presets_paper": _paper_percents(t2),
        "presets_decimals": t2["params_decimals"],
        "memory": {s: v["peak_mem_mb"] for s, v in (bench.get("rows") or {}).items()},
        "gpu_memory": {},
        "subsets": {t: models[f"subset-{t}"] for t in SUBSET_TYPES if f"subset-{t}" in models},
        "table3": {k: v for k, v in {"layernorm-conv": models.get("subset-conversation"),
                                     "finetune-full": main.get("finetune"),
                                     "layernorm-full": main.get("layernorm")}.items() if v},
        "table4": {k: v for k, v in {"layernorm+connector": main.get("layernorm"),
                                     "connector": models.get("table4-connector"),
                                     "layernorm": models.get("table4-layernorm")}.items() if v},
        "table5": {s: models[f"table5-{s}"] for s in ("finetune", "layernorm") if f"table5-{s}" in models},
        "similarity": {s: v["mean_offdiag"] for s, v in (results.get("similarity") or {}).items()},
        "gradients": results.get("gradients") or [],
        "sweeps": {s: {"best_lr": v["best"]["lr"], "lrs": [r["lr"] for r in v["rows"]],
                       "metrics": [r["metric"] for r in v["rows"]]} for s, v in (results.get("sweeps") or {}).items()},
    }


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
