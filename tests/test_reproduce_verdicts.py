"""The verdict rules of lntune reproduce: exact statuses on hand-made evidence, the helpers' arithmetic, the
rules applied to the paper's own tables, and the report rendered from a results dict (no runs)."""

import pytest

from lntune.reproduce.evidence import our_evidence, paper_evidence
from lntune.reproduce.verdicts import (NOT, PARTLY, REPRODUCED, RULES, UNTESTABLE, judge, mean_ranks, relative_gain,
                                       row_from_metrics, scores, spread)

FIVE = ("mme", "vqav2", "coco", "flickr30k", "pope")


def bench(value, **overrides):
    return {**dict.fromkeys(FIVE, value), **overrides}


def test_scores_sum_mme_and_average_pope():
    row = {"mme_perception": 600.0, "mme_cognition": 200.0, "vqav2": 15.0, "coco": 70.0, "flickr30k": None,
           "pope_popular": 70.0, "pope_random": 80.0, "pope_adversarial": 60.0}
    assert scores(row) == {"mme": 800.0, "vqav2": 15.0, "coco": 70.0, "pope": 70.0}
    assert scores({"mme_perception": 500.0, "mme_cognition": None}) == {"mme": 500.0}


def test_row_from_metrics_reads_the_evaluator_layout():
    metrics = {"mme": {"perception": 310.0, "cognition": 0.0, "subtasks": {}}, "vqav2": {"accuracy": 41.5},
               "coco": {"CIDEr": 55.0}, "flickr30k": {"CIDEr": 33.0},
               "pope": {"popular": {"accuracy": 61.0}, "random": {"accuracy": 64.0}, "adversarial": {"accuracy": 58.0},
                        "mean_f1": 60.0, "mean_accuracy": 61.0}}
    assert row_from_metrics(metrics) == {"mme_perception": 310.0, "mme_cognition": None, "vqav2": 41.5, "coco": 55.0,
                                         "flickr30k": 33.0, "pope_popular": 61.0, "pope_random": 64.0,
                                         "pope_adversarial": 58.0}


def test_mean_ranks_share_ties_and_relative_gain():
    ranks = mean_ranks({"a": {"x": 1.0, "y": 2.0}, "b": {"x": 1.0, "y": 1.0}}, benchmarks=("x", "y"))
    assert ranks == {"a": 1.25, "b": 1.75}
    assert relative_gain({"coco": 110.0, "mme": 90.0}, {"coco": 100.0, "mme": 100.0}, ("coco", "mme")) == 0.0
    assert relative_gain({"coco": 110.0}, {"coco": 100.0}, ("coco",)) == pytest.approx(10.0)
    assert relative_gain({"coco": 1.0}, {"coco": 0.0}, ("coco",)) is None
    assert relative_gain({"coco": 110.0, "mme": 5.0}, {"coco": 100.0, "mme": 0.0}, ("coco", "mme")) == pytest.approx(10.0)
    assert spread([10.0, 5.0]) == 0.5 and spread([0.0, 0.0]) is None


def main_evidence(**strategies):
    defaults = {s: bench(10.0) for s in ("finetune", "lora", "attn-qv", "attn-mlp", "layernorm", "layernorm-simple")}
    return {"main": {**defaults, **strategies}}


def test_table1_rules():
    ev = main_evidence(layernorm=bench(12.0))
    assert judge("t1_layernorm_vs_finetune", ev).status == REPRODUCED
    assert judge("t1_layernorm_best", ev).status == REPRODUCED
    assert judge("t1_layernorm_vs_lora", ev).status == REPRODUCED
    # better on two benchmarks only, worse on the rest: rank behind finetune
    ev = main_evidence(layernorm=bench(9.0, coco=11.0, flickr30k=11.0))
    assert judge("t1_layernorm_vs_finetune", ev).status == PARTLY
    best = judge("t1_layernorm_best", ev)
    assert (best.status, best.detail) == (PARTLY, "LayerNorm is best of 5 on 2/4 (coco, flickr30k)")
    ev = main_evidence(layernorm=bench(9.0, coco=11.0))
    assert judge("t1_layernorm_vs_finetune", ev).status == NOT
    assert judge("t1_layernorm_vs_lora", ev).status == NOT  # -20%+10% ... mean gain < 0, 1 win
    ev = main_evidence(**{"layernorm-simple": bench(9.0, vqav2=11.0, coco=11.0, flickr30k=11.0)})
    verdict = judge("t1_simple_vs_finetune", ev)
    assert (verdict.status, verdict.detail) == (
        REPRODUCED, "LayerNorm-simple wins 3/3 of VQAv2, MSCOCO, Flickr30k (mean relative gain +10.0%)")
    assert judge("t1_simple_vs_lora", ev).status == REPRODUCED  # +10% x3, -10% x2: mean +2%
    assert judge("t1_layernorm_vs_finetune", {"main": {"lora": bench(1.0)}}).status == UNTESTABLE


def test_mme_cognition_is_untestable_in_the_world():
    verdict = judge("t1_mme_cognition", {"mme_cognition": {}})
    assert verdict.status == UNTESTABLE and "no cognition subtask" in verdict.detail
    assert judge("t1_mme_cognition", {"mme_cognition": {"layernorm": 200.0, "finetune": 250.0}}).status == REPRODUCED


def test_table2_rules():
    counts = {"finetune": 100, "lora": 40, "attn-qv": 50, "attn-mlp": 80, "layernorm": 30, "layernorm-simple": 1}
    verdict = judge("t2_param_order", {"trainable": counts})
    assert (verdict.status, verdict.detail) == (
        REPRODUCED, "LayerNorm trains 25.0% fewer parameters than LoRA; LayerNorm-simple is the smallest of 6")
    assert judge("t2_param_order", {"trainable": {**counts, "layernorm": 45}}).status == PARTLY
    memory = {"finetune": 900.0, "lora": 500.0, "attn-qv": 600.0, "attn-mlp": 800.0, "layernorm": 400.0,
              "layernorm-simple": 400.0}
    assert judge("t2_memory_order", {"memory": memory}).status == REPRODUCED
    assert judge("t2_memory_order", {"memory": {**memory, "finetune": 700.0}}).status == PARTLY
    assert judge("t2_memory_order", {"memory": {**memory, "layernorm": 550.0}}).status == NOT
    assert judge("t2_memory_order", {"memory": {}}).status == UNTESTABLE
    assert judge("t2_memory_gpu", {}).status == UNTESTABLE


def test_data_type_rules():
    subsets = {"conversation": bench(10.0), "detail": bench(8.0), "complex_reasoning": bench(9.0)}
    assert judge("f2_conversation_best", {"subsets": subsets}).status == REPRODUCED
    assert judge("f2_conversation_best", {"subsets": {**subsets, "detail": bench(11.0)}}).status == PARTLY
    assert judge("f2_conversation_best", {"subsets": {**subsets, "conversation": bench(7.0)}}).status == NOT
    t3 = {"layernorm-conv": bench(100.0, mme=95.0), "finetune-full": bench(90.0, mme=100.0),
          "layernorm-full": bench(110.0, mme=100.0)}
    verdict = judge("t3_less_is_more", {"table3": t3})
    assert (verdict.status, verdict.detail) == (
        REPRODUCED, "captioning +11.1%, MME -5.0% (LayerNorm-conversation vs finetune-full)")
    assert judge("t3_less_is_more", {"table3": {**t3, "layernorm-conv": bench(100.0, mme=80.0)}}).status == PARTLY
    assert judge("t3_subset_vs_full", {"table3": t3}).status == REPRODUCED  # -9.1% captioning, -5% MME
    assert judge("t3_subset_vs_full", {"table3": {**t3, "layernorm-full": bench(200.0, mme=100.0)}}).status == PARTLY


def test_ablation_rules():
    t4 = {"layernorm+connector": bench(100.0), "layernorm": bench(95.0), "connector": bench(80.0)}
    verdict = judge("t4_layernorm_vs_connector", {"table4": t4})
    assert (verdict.status, verdict.detail) == (
        REPRODUCED, "drop vs LayerNorm+connector: LayerNorm-only 5.0% conventional / 5.0% MME, "
                    "connector-only 20.0% / 20.0%")
    assert judge("t4_layernorm_vs_connector", {"table4": {**t4, "connector": bench(80.0, mme=99.0)}}).status == PARTLY
    t5 = {"finetune": bench(50.0), "layernorm": bench(55.0, mme=48.0)}
    assert judge("t5_unaligned_layernorm", {"table5": t5}).status == REPRODUCED  # captioning +10%, MME -4%
    assert judge("t5_unaligned_layernorm", {"table5": {**t5, "layernorm": bench(40.0)}}).status == NOT
    main = {"finetune": bench(60.0), "layernorm": bench(60.0, mme=40.0, vqav2=40.0, coco=40.0)}
    verdict = judge("t5_aligned_better", {"table5": t5, "main": main})
    assert (verdict.status, verdict.detail) == (
        PARTLY, "finetune: aligned tower wins 5/5; layernorm: aligned tower wins 2/5")


def test_analysis_rules():
    verdict = judge("t6_similarity", {"similarity": {"layernorm": 0.5, "finetune": 0.625}})
    assert (verdict.status, verdict.detail) == (REPRODUCED, "LayerNorm 0.500 vs finetune 0.625 (20.0% lower)")
    assert judge("t6_similarity", {"similarity": {"layernorm": 0.7, "finetune": 0.6}}).status == NOT
    ratios = [{"layer": 10, "norm": n, "mean_of_std_ratio": r} for n, r in (("input_layernorm", 0.8),
                                                                           ("post_attention_layernorm", 1.2))]
    assert judge("f4_gradient_variance", {"gradients": ratios}).status == PARTLY
    assert judge("f4_gradient_variance", {"gradients": ratios[:1]}).status == REPRODUCED
    assert judge("f4_gradient_variance", {"gradients": []}).status == UNTESTABLE
    sweeps = {"finetune": {"best_lr": 1e-4, "metrics": [10.0, 9.0]},
              "layernorm": {"best_lr": 2e-3, "metrics": [20.0, 5.0]},
              "layernorm-simple": {"best_lr": 1e-4, "metrics": [8.0, 12.0]}}
    assert judge("a1_lr_range", {"sweeps": sweeps}).status == PARTLY
    verdict = judge("lr_sensitivity", {"sweeps": sweeps})
    assert (verdict.status, verdict.detail) == (
        REPRODUCED, "relative spread of Flickr30k CIDEr over the grid: finetune 0.10, layernorm 0.75, "
                    "layernorm-simple 0.33")
    one_lr = {s: {"best_lr": 1e-3, "metrics": [5.0]} for s in sweeps}
    assert judge("lr_sensitivity", {"sweeps": one_lr}).status == UNTESTABLE


def test_every_rule_reads_only_evidence_our_runs_provide():
    keys = set(our_evidence({"models": {}, "sweeps": {}}))
    for claim_id, rule in RULES.items():
        assert set(rule.needs) <= keys, claim_id
        assert judge(claim_id, {key: {} for key in keys}).status == UNTESTABLE, claim_id


def test_rules_on_the_papers_numbers_recover_its_text():
    evidence = paper_evidence()
    order = dict(evidence["t2_param_order"])
    assert "41.9% fewer" in judge("t2_param_order", order["13B"]).detail  # the conclusion's 41.9%
    memory = dict(evidence["t2_memory_order"])
    assert "17.6% less" in judge("t2_memory_order", memory["13B"]).detail  # the abstract's 17.6%
    assert [judge("t1_layernorm_vs_lora", ev).status for _, ev in evidence["t1_layernorm_vs_lora"]] == [REPRODUCED] * 5
    assert [judge("t6_similarity", ev).status for _, ev in evidence["t6_similarity"]] == [REPRODUCED] * 3
    assert [judge("t4_layernorm_vs_connector", ev).status for _, ev in evidence["t4_layernorm_vs_connector"]] == \
        [REPRODUCED, PARTLY]
    assert [judge("a1_lr_range", ev).status for _, ev in evidence["a1_lr_range"]] == [REPRODUCED]
    assert [judge("t1_chat_llm_better", ev).status for _, ev in evidence["t1_chat_llm_better"]] == [REPRODUCED] * 2
    assert judge("t1_chat_llm_better", {}).status == UNTESTABLE  # a reproduction on one LLM


def fake_results():
    """A reproduction's results.json without running anything: LayerNorm best, finetune second, ..."""
    def metrics(level, cognition=0.0):
        return {"mme": {"perception": 8 * level, "cognition": cognition, "subtasks": {}},
                "vqav2": {"accuracy": level}, "coco": {"CIDEr": level}, "flickr30k": {"CIDEr": level},
                "pope": {s: {"accuracy": 50 + level / 10} for s in ("popular", "random", "adversarial")}}
    levels = {"finetune": 40, "lora": 20, "attn-qv": 30, "attn-mlp": 25, "layernorm": 50, "layernorm-simple": 35,
              "subset-conversation": 45, "subset-detail": 30, "subset-complex_reasoning": 32, "table4-connector": 20,
              "table4-layernorm": 44, "table5-finetune": 30, "table5-layernorm": 33}
    strategies = list(levels)[:6]
    trainable = dict(zip(strategies, (1000, 300, 400, 700, 250, 10)))
    return {
        "preset": "world-quick", "world": "quick", "lrs": [2e-3, 1e-4],
        "models": {name: metrics(level) for name, level in levels.items()},
        "sweeps": {s: {"rows": [{"lr": 2e-3, "metric": levels[s]}, {"lr": 1e-4, "metric": levels[s] / 2}],
                       "best": {"lr": 2e-3, "metric": levels[s]}} for s in strategies},
        "params": {"measured": {"strategies": {s: {"trainable": n, "total": 2000, "percent": n / 20} for s, n in
                                               trainable.items()}, "lora_r": 32}, "presets": {}},
        "bench": {"device": "cpu", "batch_size": 8, "rows": {s: {"peak_mem_mb": 1000 + n, "step_time_s": 2.0,
                                                                 "trainable": n} for s, n in trainable.items()}},
        "similarity": {"finetune": {"mean_offdiag": 0.62, "layers": 30, "samples": 12},
                       "layernorm": {"mean_offdiag": 0.58, "layers": 30, "samples": 12}},
        "gradients": [{"layer": 10, "norm": "input_layernorm", "mean_of_std_ratio": 0.9, "var_of_mean_ratio": 0.8}],
        "table4_norms_only_reused": True,
        "jobs": {"train/stage1": {"label": "stage 1", "planned_s": 120.0, "measured_s": 300.0, "cpu_s": 150.0}},
    }


def test_report_renders_every_section_from_results(tmp_path):
    from lntune.reproduce.report import export_docs, make_figures, render

    results = fake_results()
    figs = make_figures(results, tmp_path)
    assert set(figs) == {"table1", "fig2", "sweeps", "table2"}
    text = render(results, figs)
    summary = text.split("## Summary")[1].split("## Table 1")[0]
    assert summary.count("| `") == len(RULES)
    for claim_id, status in (("t1_layernorm_vs_finetune", REPRODUCED), ("t2_param_order", REPRODUCED),
                             ("t2_memory_gpu", UNTESTABLE), ("t1_mme_cognition", UNTESTABLE),
                             ("t6_similarity", REPRODUCED), ("lr_sensitivity", NOT)):
        assert f"| `{claim_id}` |" in summary and f"**{status}**" in summary.split(f"`{claim_id}`")[1].split("\n")[0]
    # the paper's numbers are printed from the data files
    assert "| LayerNorm | 723.2/253.2 | 17.06 | 80.89 | 48.01 | 76.1/81.1/70.8 |" in text
    assert "| MM-LLaMA2-Chat-7B | 0.550 | 0.617 |" in text
    assert "The same rule on the paper's numbers: reproduced for 5/5" in text
    assert "Our norms-only run is the layernorm-simple run" in text
    (tmp_path / "report.md").write_text(text)
    doc = export_docs(tmp_path, tmp_path / "docs")
    assert "](reproduction/table1.png)" in doc.read_text() and "](figures/" not in doc.read_text()
    assert (tmp_path / "docs" / "reproduction" / "table1.png").is_file()


def test_cli_rejects_zero_threads(capsys):
    from lntune.cli import main

    assert main(["reproduce", "--threads", "0", "--out", "unused"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
