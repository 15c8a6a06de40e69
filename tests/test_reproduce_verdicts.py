"""The verdict rules of lntune reproduce: exact statuses on hand-made evidence, the helpers' arithmetic, the
rules applied to the paper's own tables, and the report rendered from a results dict (no runs)."""

import pytest

from lntune.reproduce.evidence import our_evidence, paper_evidence
from lntune.reproduce.verdicts import (CONTRADICTED, INCONCLUSIVE, REPRODUCED, RULES, UNTESTABLE, judge, mean_ranks,
                                       relative_gain, row_from_metrics, scores, spread)

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


def test_rules_on_point_values_read_the_direction():
    """Evidence without bootstrap draws (the paper's numbers): the effect's sign decides."""
    ev = main_evidence(layernorm=bench(12.0))
    for claim in ("t1_layernorm_vs_finetune", "t1_layernorm_best", "t1_layernorm_vs_lora"):
        assert judge(claim, ev).status == REPRODUCED, claim
    verdict = judge("t1_layernorm_vs_finetune", ev)
    assert verdict.value == pytest.approx(20.0) and verdict.interval is None
    assert verdict.detail == "mean relative gain of layernorm over finetune on 5 benchmarks +20.00%"
    ev = main_evidence(layernorm=bench(9.0, coco=11.0))  # -10% x4, +10%: mean -6%
    assert judge("t1_layernorm_vs_finetune", ev).status == CONTRADICTED
    assert judge("t1_layernorm_vs_finetune", main_evidence()).status == INCONCLUSIVE  # no difference at all
    ev = main_evidence(**{"layernorm-simple": bench(9.0, vqav2=11.0, coco=11.0, flickr30k=11.0)})
    assert judge("t1_simple_vs_finetune", ev).status == REPRODUCED
    assert judge("t1_simple_vs_lora", ev).status == REPRODUCED  # +10% x3, -10% x2: mean +2%
    assert judge("t1_layernorm_vs_finetune", {"main": {"lora": bench(1.0)}}).status == UNTESTABLE
    assert judge("t1_mme_cognition", {"mme_cognition": {"layernorm": 200.0, "finetune": 250.0}}).status == REPRODUCED
    verdict = judge("t1_mme_cognition", {"mme_cognition": {}})
    assert verdict.status == UNTESTABLE and "no cognition subtask" in verdict.detail


def write_vqav2_seed(eval_dir, correct):
    """An evaluation folder whose units/vqav2.json scores the questions 1 where `correct` is true, else 0."""
    from lntune.eval.intervals import units_path, write_units

    units = [{"id": i, "accuracy": float(c), "answer_type": "other", "question_type": "what"}
             for i, c in enumerate(correct)]
    write_units(units_path(eval_dir, "vqav2"), "vqav2", units)
    return eval_dir


def seeds_of(root, name, rates, questions=500):
    """One folder per seed; seed k answers the first rates[k] share of the questions right, in a fixed
    shuffled order, so different models and seeds disagree on individual questions."""
    import numpy as np

    order = np.random.default_rng(7).permutation(questions)
    return [write_vqav2_seed(root / name / f"seed-{k}", order < rate * questions) for k, rate in enumerate(rates)]


def vqav2_evidence(root, finetune_rates, layernorm_rates):
    """Evidence for t1_layernorm_vs_finetune from per-question records (VQAv2 only, both models)."""
    from lntune.reproduce.resampled import resampled_scores

    dirs = {"finetune": seeds_of(root, "finetune", finetune_rates),
            "layernorm": seeds_of(root, "layernorm", layernorm_rates)}
    draws = resampled_scores(dirs)
    points = {"finetune": {"vqav2": 100 * sum(finetune_rates) / len(finetune_rates)},
              "layernorm": {"vqav2": 100 * sum(layernorm_rates) / len(layernorm_rates)}}
    return {"main": points, "resampled": {"main": draws}}, draws


def test_verdicts_decide_on_the_two_level_interval(tmp_path):
    # a clear 20-point difference over 3 seeds x 500 questions: significant, in the direction of the data
    ev, draws = vqav2_evidence(tmp_path / "a", [0.5, 0.52, 0.48], [0.7, 0.72, 0.68])
    verdict = judge("t1_layernorm_vs_finetune", ev)
    assert verdict.status == REPRODUCED and verdict.value == pytest.approx(40.0)
    assert 0 < verdict.interval[0] < 40.0 < verdict.interval[1]
    ev, _ = vqav2_evidence(tmp_path / "b", [0.7, 0.72, 0.68], [0.5, 0.52, 0.48])
    assert judge("t1_layernorm_vs_finetune", ev).status == CONTRADICTED
    # identical runs: difference 0 in every resample
    ev, draws = vqav2_evidence(tmp_path / "c", [0.6, 0.6, 0.6], [0.6, 0.6, 0.6])
    assert (draws["layernorm"]["vqav2"] == draws["finetune"]["vqav2"]).all()
    verdict = judge("t1_layernorm_vs_finetune", ev)
    assert verdict.status == INCONCLUSIVE and verdict.interval == [0.0, 0.0]
    # a 10-point mean difference carried by seeds that disagree (80, 20, 80 against 50): seed noise dominates
    ev, _ = vqav2_evidence(tmp_path / "d", [0.5, 0.5, 0.5], [0.8, 0.2, 0.8])
    verdict = judge("t1_layernorm_vs_finetune", ev)
    assert verdict.value == pytest.approx(20.0) and verdict.status == INCONCLUSIVE and verdict.interval[0] < 0


def test_two_level_bootstrap_is_seeded_and_pairs_questions(tmp_path):
    import numpy as np

    from lntune.eval.bootstrap import percentile_interval
    from lntune.eval.compare import compare_units
    from lntune.eval.intervals import read_units, units_path
    from lntune.reproduce.resampled import resampled_scores, seed_resampled

    dirs = {"a": seeds_of(tmp_path, "a", [0.5, 0.6]), "b": seeds_of(tmp_path, "b", [0.7, 0.65])}
    first, again = resampled_scores(dirs), resampled_scores(dirs)
    assert (first["a"]["vqav2"] == again["a"]["vqav2"]).all() and first["a"]["vqav2"].shape == (1000,)
    assert not (resampled_scores(dirs, seed=1)["a"]["vqav2"] == first["a"]["vqav2"]).all()
    # one seed per model: the question level alone, the same paired bootstrap as `lntune compare`
    one = resampled_scores({"a": dirs["a"][:1], "b": dirs["b"][:1]})
    units = [read_units(units_path(d[0], "vqav2"))[1] for d in (dirs["a"], dirs["b"])]
    paired = compare_units("vqav2", *units)["accuracy"]
    assert percentile_interval(one["b"]["vqav2"] - one["a"]["vqav2"], paired["difference"]) == paired["ci95"]
    # the seed level: with every seed equal the draws are that value; the draws are means of drawn seeds
    assert (seed_resampled([0.3, 0.3, 0.3]) == 0.3).all()
    draws = seed_resampled([0.0, 1.0, 2.0])
    assert set(np.round(draws * 3).astype(int)) <= set(range(7)) and 0.9 < draws.mean() < 1.1


def test_relative_gain_and_spread_on_draws():
    import numpy as np

    a = {"coco": np.array([110.0, 90.0]), "mme": np.array([100.0, 100.0])}
    b = {"coco": np.array([100.0, 0.0]), "mme": np.array([50.0, 100.0])}
    # per draw; a baseline of 0 leaves that benchmark out of that draw only
    assert relative_gain(a, b, ("coco", "mme")).tolist() == pytest.approx([55.0, 0.0])
    assert spread([np.array([10.0, 4.0]), np.array([5.0, 4.0])]).tolist() == [0.5, 0.0]


def test_exact_rules():
    counts = {"finetune": 100, "lora": 40, "attn-qv": 50, "attn-mlp": 80, "layernorm": 30, "layernorm-simple": 1}
    verdict = judge("t2_param_order", {"trainable": counts})
    assert (verdict.status, verdict.detail) == (
        REPRODUCED, "LayerNorm trains 25.0% fewer parameters than LoRA; LayerNorm-simple is the smallest of 6")
    assert judge("t2_param_order", {"trainable": {**counts, "layernorm": 45}}).status == CONTRADICTED
    memory = {"finetune": 900.0, "lora": 500.0, "attn-qv": 600.0, "attn-mlp": 800.0, "layernorm": 400.0,
              "layernorm-simple": 400.0}
    assert judge("t2_memory_order", {"memory": memory}).status == REPRODUCED
    assert judge("t2_memory_order", {"memory": {**memory, "finetune": 700.0}}).status == CONTRADICTED
    assert judge("t2_memory_order", {"memory": {}}).status == UNTESTABLE
    assert judge("t2_memory_gpu", {}).status == UNTESTABLE
    predicted = judge("t2_memory_gpu", {"gpu_memory_predicted": {"7b": {"lora": 22.1, "layernorm": 18.9}},
                                        "gpu_memory_paper": {"7b": {"lora": 29.4, "layernorm": 24.2}}})
    assert predicted.status == UNTESTABLE  # a prediction is not a measurement
    assert predicted.detail.endswith("predicted by the memory model, not measured, in GB: "
                                     "7B: lora 22.1 (paper 29.4), layernorm 18.9 (paper 24.2)")
    sweeps = {"finetune": {"best_lr": 1e-4, "metrics": [10.0, 9.0]},
              "layernorm": {"best_lr": 2e-3, "metrics": [20.0, 5.0]},
              "layernorm-simple": {"best_lr": 1e-4, "metrics": [8.0, 12.0]}}
    assert judge("a1_lr_range", {"sweeps": sweeps}).status == CONTRADICTED
    assert judge("a1_lr_range", {"sweeps": {"layernorm": sweeps["layernorm"]}}).status == REPRODUCED
    verdict = judge("lr_sensitivity", {"sweeps": sweeps})  # spreads: finetune 0.10, layernorm 0.75, simple 0.33
    assert verdict.status == REPRODUCED and verdict.value == pytest.approx(1 / 3 - 0.1)
    one_lr = {s: {"best_lr": 1e-3, "metrics": [5.0]} for s in sweeps}
    assert judge("lr_sensitivity", {"sweeps": one_lr}).status == UNTESTABLE


def test_data_type_and_ablation_rules():
    subsets = {"conversation": bench(10.0), "detail": bench(8.0), "complex_reasoning": bench(9.0)}
    assert judge("f2_conversation_best", {"subsets": subsets}).status == REPRODUCED
    assert judge("f2_conversation_best", {"subsets": {**subsets, "detail": bench(11.0)}}).status == CONTRADICTED
    t3 = {"layernorm-conv": bench(100.0, mme=95.0), "finetune-full": bench(90.0, mme=100.0),
          "layernorm-full": bench(110.0, mme=100.0)}
    verdict = judge("t3_less_is_more", {"table3": t3})  # captioning +11.1%, MME -5% + 10
    assert verdict.status == REPRODUCED and verdict.value == pytest.approx(5.0)
    assert judge("t3_less_is_more", {"table3": {**t3, "layernorm-conv": bench(100.0, mme=80.0)}}).status == CONTRADICTED
    assert judge("t3_subset_vs_full", {"table3": t3}).status == REPRODUCED  # -9.1% captioning, -5% MME
    assert judge("t3_subset_vs_full", {"table3": {**t3, "layernorm-full": bench(200.0, mme=100.0)}}).status == \
        CONTRADICTED
    t4 = {"layernorm+connector": bench(100.0), "layernorm": bench(95.0), "connector": bench(80.0)}
    verdict = judge("t4_layernorm_vs_connector", {"table4": t4})
    assert verdict.status == REPRODUCED and verdict.value == pytest.approx(15.0)
    assert judge("t4_layernorm_vs_connector", {"table4": {**t4, "connector": bench(80.0, mme=99.0)}}).status == \
        CONTRADICTED
    t5 = {"finetune": bench(50.0), "layernorm": bench(55.0, mme=48.0)}
    assert judge("t5_unaligned_layernorm", {"table5": t5}).status == REPRODUCED  # captioning +10%, MME -4%
    assert judge("t5_unaligned_layernorm", {"table5": {**t5, "layernorm": bench(40.0)}}).status == CONTRADICTED
    main = {"finetune": bench(60.0), "layernorm": bench(60.0)}  # +20%; +9.1% x4 and +25% on MME
    assert judge("t5_aligned_better", {"table5": t5, "main": main}).status == REPRODUCED
    main["layernorm"] = bench(40.0)
    assert judge("t5_aligned_better", {"table5": t5, "main": main}).status == CONTRADICTED


def test_analysis_rules():
    import numpy as np

    verdict = judge("t6_similarity", {"similarity": {"layernorm": 0.5, "finetune": 0.625}})
    assert verdict.status == REPRODUCED and verdict.value == pytest.approx(0.125)
    # our evidence: the seed-level draws decide
    from lntune.reproduce.resampled import seed_resampled

    sims = {"layernorm": [0.5, 0.7, 0.4], "finetune": [0.6, 0.6, 0.6]}
    ev = {"similarity": {s: float(np.mean(v)) for s, v in sims.items()},
          "resampled": {"similarity": {s: seed_resampled(v) for s, v in sims.items()}}}
    assert judge("t6_similarity", ev).status == INCONCLUSIVE
    gradients = {"ratios": [{"layer": 10, "norm": "input_layernorm", "mean_of_std_ratio": 0.8}],
                 "mean_log_ratio": float(np.log(0.8))}
    assert judge("f4_gradient_variance", {"gradients": gradients}).status == REPRODUCED
    assert judge("f4_gradient_variance", {"gradients": {}}).status == UNTESTABLE


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
        [REPRODUCED, CONTRADICTED]
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
    import numpy as np

    from lntune.reproduce.verdicts import scores as five_scores

    strategies = list(levels)[:6]
    trainable = dict(zip(strategies, (1000, 300, 400, 700, 250, 10)))
    models = {name: [metrics(level + d) for d in ((0, 1, -1) if name in strategies else (0,))]
              for name, level in levels.items()}
    rng = np.random.default_rng(0)
    resampled = {name: {b: (v + rng.normal(0, 0.5, 1000)).tolist()
                        for b, v in five_scores(row_from_metrics(metrics(levels[name]))).items()} for name in levels}
    return {
        "preset": "world-quick", "world": "quick", "lrs": {s: [2e-3, 1e-4] for s in strategies},
        "sizes": {"mix_samples": 80, "subset_samples": 24, "stage2": [], "stage1": [], "sweep_limit": 6,
                  "eval_limit": {"pope": 100, "coco": 64}, "similarity_samples": 8, "threads": 1, "seeds": [0, 1, 2],
                  "resamples": 1000},
        "models": models, "resampled": resampled,
        "sweeps": {s: {"rows": [{"lr": 2e-3, "metric": levels[s]}, {"lr": 1e-4, "metric": levels[s] / 2}],
                       "best": {"lr": 2e-3, "metric": levels[s]}} for s in strategies},
        "params": {"measured": {"strategies": {s: {"trainable": n, "total": 2000, "percent": n / 20} for s, n in
                                               trainable.items()}, "lora_r": 32}, "presets": {}},
        "bench": {"device": "cpu", "batch_size": 8, "rows": {s: {"peak_mem_mb": 1000 + n, "step_time_s": 2.0,
                                                                 "trainable": n} for s, n in trainable.items()}},
        "similarity": {"finetune": {"mean_offdiag": 0.62, "layers": 30, "samples": 12},
                       "layernorm": {"mean_offdiag": 0.58, "layers": 30, "samples": 12}},
        "similarity_per_seed": {"finetune": [0.62, 0.61, 0.63], "layernorm": [0.58, 0.57, 0.59]},
        "gradients": [{"layer": 10, "norm": "input_layernorm", "mean_of_std_ratio": 0.9, "var_of_mean_ratio": 0.8}],
        "gradients_per_seed": [{"seed": k, "ratios": [{"layer": 10, "norm": "input_layernorm", "mean_of_std_ratio": r}]}
                               for k, r in enumerate((0.9, 0.8, 0.85))],
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
                             ("t6_similarity", REPRODUCED), ("f4_gradient_variance", REPRODUCED),
                             ("lr_sensitivity", INCONCLUSIVE), ("t1_layernorm_best", REPRODUCED)):
        assert f"| `{claim_id}` |" in summary and f"**{status}**" in summary.split(f"`{claim_id}`")[1].split("\n")[0]
    # the paper's numbers are printed from the data files
    assert "| LayerNorm | 723.2/253.2 | 17.06 | 80.89 | 48.01 | 76.1/81.1/70.8 |" in text
    assert "| MM-LLaMA2-Chat-7B | 0.550 | 0.617 |" in text
    assert "the direction decides): holds for 5/5" in text
    assert "| LayerNorm | 3 | 400.00 ± 8.00 [" in text  # MME 8 x (49, 50, 51): mean ± sd over seeds [interval]
    assert "Summary: 16 conclusive (15 reproduced, 1 contradicted), 1 inconclusive, 4 untestable" in text
    assert "Our norms-only run is the layernorm-simple run" in text
    (tmp_path / "report.md").write_text(text)
    doc = export_docs(tmp_path, tmp_path / "docs")
    assert "](reproduction/table1.png)" in doc.read_text() and "](figures/" not in doc.read_text()
    assert (tmp_path / "docs" / "reproduction" / "table1.png").is_file()


def test_cli_rejects_zero_threads(capsys):
    from lntune.cli import main

    assert main(["reproduce", "--threads", "0", "--out", "unused"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
