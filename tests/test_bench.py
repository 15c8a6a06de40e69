"""`lntune bench` on the tiny preset: JSON shape, exact trainable counts, exact FLOP floors, ratios.

No timing is asserted (this machine is shared); the rows run in this process except in the CLI test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lntune.bench.flops import WeightGroups, step_flop_floor, strategy_weight_groups, weight_groups
from lntune.bench.presets import recipe
from lntune.bench.runner import format_table, merge_rounds, plot_chart, public_json, row_ratios, run_bench
from lntune.errors import LntuneError

REPO = Path(__file__).resolve().parents[1]

# The tiny preset: Llama 2 layers, hidden 32, 4 heads x 8, 2 KV heads, MLP 64, vocabulary 38 with <image> and
# <pad>; CLIP 2 layers, hidden 16, MLP 32, 32 px images in 8 px patches (16 image tokens + CLS).
TINY = WeightGroups(vision_linear=2 * (4 * 16 * 16 + 2 * 16 * 32), vision_conv=3 * 8 * 8 * 16, projector=16 * 32,
                    decoder=2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64), head=38 * 32)
NORMS = 2 * 2 * 32  # input_layernorm + post_attention_layernorm of 2 layers
BASE = (16 * 32 + 32) + 38 * 32 + 38 * 32  # projector (+bias), embed_tokens, lm_head (untied)
LORA_ADAPTERS = 2 * 32 * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 3 * (32 + 64))  # r=32: r*(in+out) per linear


def tiny_step(indices):
    """(tokens, supervised) of a batch of tiny samples: sample i has i % 4 extra turns of 15 tokens, 6 supervised."""
    extra = [i % 4 for i in indices]
    return sum(31 + 15 * k for k in extra), sum(5 + 6 * k for k in extra)


def floor(groups, tokens, supervised, images=4):
    return step_flop_floor(groups, tokens, supervised, images, image_tokens=16)


def test_flop_floor_counts_each_pass_once():
    g = WeightGroups(vision_linear=10, vision_conv=3, projector=5, projector_trained=5, decoder=100, decoder_trained=40,
                     head=7, head_trained=0)
    expected = 2 * 2 * (10 * 5 + 3 * 4) + 2 * 4 * (2 * 5 + 2 * 5) + 50 * (4 * 100 + 2 * 40) + 9 * (4 * 7)
    assert step_flop_floor(g, tokens=50, supervised=9, images=2, image_tokens=4) == expected
    # all decoder weights trained: 6·N·tokens; none: 4·N·tokens
    assert step_flop_floor(WeightGroups(decoder=100, decoder_trained=100), 10, 0, 0, 0) == 6 * 100 * 10
    assert step_flop_floor(WeightGroups(decoder=100), 10, 0, 0, 0) == 4 * 100 * 10


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def tiny_recipe(bench_dir):
    return recipe("tiny", bench_dir)


@pytest.mark.parametrize("strategy, trained", [
    ("layernorm-simple", {}),
    ("layernorm", {"projector_trained": 16 * 32, "head_trained": 38 * 32}),
    ("finetune", {"projector_trained": 16 * 32, "head_trained": 38 * 32, "decoder_trained": TINY.decoder}),
    ("lora", {"projector_trained": 16 * 32, "head_trained": 38 * 32, "decoder_trained": LORA_ADAPTERS,
              "decoder": TINY.decoder + LORA_ADAPTERS}),
])
def test_weight_groups_of_the_real_model_equal_the_meta_count(tiny_recipe, strategy, trained):
    from lntune.bench.inputs import build, run_config
    from lntune.strategies import apply_strategy
    from lntune.train.loop import strategy_spec

    config = run_config(tiny_recipe, strategy)
    model, _ = build(tiny_recipe, config)
    apply_strategy(model, strategy_spec(config))
    expected = WeightGroups(**{**TINY.to_dict(), **trained})
    assert weight_groups(model) == expected
    assert strategy_weight_groups(model.config, strategy_spec(config)) == expected


@pytest.fixture(scope="module")
def tiny_result(bench_dir):
    return run_bench("tiny", strategies=["finetune", "lora", "layernorm", "layernorm-simple"], baselines=["layernorm"],
                     steps=2, warmup=1, rounds=1, workdir=bench_dir,
                     progress=False, isolate=False)


def test_rows_have_the_documented_keys_and_exact_counts(tiny_result):
    result = public_json(tiny_result)
    assert json.loads(json.dumps(result)) == result  # plain JSON
    rows = {(r["impl"], r["strategy"], r["variant"]): r for r in result["rows"]}
    assert list(rows) == [("lntune", "finetune", ""), ("lntune", "lora", ""), ("lntune", "layernorm", ""),
                          ("lntune", "layernorm-simple", ""), ("hf-peft", "layernorm", ""),
                          ("lntune", "layernorm-simple", "feature-cache")]
    for row in result["rows"]:
        assert list(row)[:6] == ["impl", "strategy", "step_time_s", "tokens_per_s", "peak_mem_mb", "trainable"]
        assert row["step_time_s"] > 0 and row["tokens_per_s"] > 0 and row["peak_mem_mb"] > 0
    assert rows[("lntune", "layernorm-simple", "")]["trainable"] == NORMS
    assert rows[("lntune", "layernorm", "")]["trainable"] == NORMS + BASE
    assert rows[("hf-peft", "layernorm", "")]["trainable"] == NORMS + BASE  # peft's copies: the same tensors' sizes
    assert rows[("lntune", "lora", "")]["trainable"] == LORA_ADAPTERS + BASE
    assert rows[("lntune", "finetune", "")]["trainable"] == TINY.decoder + NORMS + 32 + BASE  # + the final norm
    assert rows[("lntune", "finetune", "")]["total"] == rows[("lntune", "layernorm", "")]["total"]
    assert set(result["machine"]) >= {"cpu", "cores", "torch", "load_avg_before", "load_avg_after"}
    assert result["matmul_gflops"] > 0 and result["settings"]["batch_size"] == 4


def test_every_row_trains_the_same_batches_and_the_floor_is_exact(tiny_result):
    # the epoch plan of seed 0 (length-grouped) starts [35,43,19,31], [28,44,4,40], [38,6,34,18]; step 1 is warm-up
    timed = [tiny_step([28, 44, 4, 40]), tiny_step([38, 6, 34, 18])]
    assert timed == [(124, 20), (244, 68)]
    for row in tiny_result["rows"]:
        assert [(s["tokens"], s["supervised"], s["images"]) for s in row["steps"]] == [(t, s, 4) for t, s in timed]
    expected = {
        "layernorm-simple": TINY,
        "layernorm": WeightGroups(**{**TINY.to_dict(), "projector_trained": 512, "head_trained": 1216}),
        "finetune": WeightGroups(**{**TINY.to_dict(), "projector_trained": 512, "head_trained": 1216,
                                    "decoder_trained": TINY.decoder}),
    }
    for strategy, groups in expected.items():
        mean = sum(floor(groups, t, s) for t, s in timed) / 2
        assert tiny_result["flop_floor"][strategy] == mean
        for row in tiny_result["rows"]:
            if row["strategy"] == strategy:
                assert row["flop_floor"] == mean
                assert row["floor_gflops"] == pytest.approx(2 * mean / sum(row["step_times_s"]) / 1e9)
                assert row["matmul_fraction"] == pytest.approx(row["floor_gflops"] / tiny_result["matmul_gflops"])
    # the hand-written layernorm-simple floor of the first timed step
    assert floor(TINY, 124, 20) == (2 * 4 * (4096 * 17 + 3072 * 16) + 4 * 16 * 2 * 512 + 124 * 4 * 18432 + 20 * 4 * 1216)


def test_ratios_are_ratios_of_the_rows(tiny_result):
    rows = {(r["impl"], r["strategy"], r["variant"]): r for r in tiny_result["rows"]}
    r = tiny_result["ratios"]
    simple, ln = rows[("lntune", "layernorm-simple", "")], rows[("lntune", "layernorm", "")]
    hf_ln, finetune = rows[("hf-peft", "layernorm", "")], rows[("lntune", "finetune", "")]
    assert r == {"layernorm_simple_step_time_vs_finetune": simple["step_time_s"] / finetune["step_time_s"],
                 "layernorm_simple_peak_mem_vs_lora": simple["peak_mem_mb"] / rows[("lntune", "lora", "")]["peak_mem_mb"],
                 "layernorm_tokens_per_s_vs_hf_peft": ln["tokens_per_s"] / hf_ln["tokens_per_s"],
                 "layernorm_peak_mem_vs_hf_peft": ln["peak_mem_mb"] / hf_ln["peak_mem_mb"],
                 "layernorm_simple_matmul_fraction": simple["matmul_fraction"]}
    cpu = tiny_result["ratios_cpu_clock"]
    assert cpu["layernorm_simple_step_time_vs_finetune"] == simple["cpu_step_time_s"] / finetune["cpu_step_time_s"]
    assert cpu["layernorm_simple_matmul_fraction"] == simple["cpu_matmul_fraction"]
    assert cpu["layernorm_simple_peak_mem_vs_lora"] == r["layernorm_simple_peak_mem_vs_lora"]
    table = format_table(tiny_result)
    assert "layernorm_simple_peak_mem_vs_lora" in table and "hf-peft" in table
    assert "ok" not in table.split() and "MISS" not in table  # measurements, not verdicts


def test_ratios_without_their_rows_are_not_measured():
    row = dict(impl="lntune", strategy="layernorm-simple", variant="", step_time_s=1.0, peak_mem_mb=70.0,
               tokens_per_s=10.0, matmul_fraction=0.55)
    other = dict(row, strategy="lora", peak_mem_mb=100.0)
    r = row_ratios([row, other])
    assert r["layernorm_simple_peak_mem_vs_lora"] == 0.7 and r["layernorm_simple_matmul_fraction"] == 0.55
    assert r["layernorm_simple_step_time_vs_finetune"] is None and r["layernorm_tokens_per_s_vs_hf_peft"] is None


def test_rounds_pool_their_steps():
    def run(times, peak, tokens):
        return {"impl": "lntune", "strategy": "layernorm", "variant": "", "step_time_s": 0, "step_times_s": times,
                "cpu_step_times_s": [t / 2 for t in times],
                "steps": [{"tokens": tokens, "supervised": 1, "images": 1}] * len(times), "peak_mem_mb": peak,
                "trainable": 5, "total": 9, "flop_floor": 100.0, "peak_mem_scope": "since reset",
                "matmul": {"gflops": 1.0}, "build_s": 1.0, "threads": 2, "weights": {}}

    row = merge_rounds([run([1.0, 3.0], 50.0, 10), run([2.0], 60.0, 10)])
    assert row["step_time_s"] == 2.0 and row["peak_mem_mb"] == 60.0
    assert row["tokens_per_s"] == 30 / 6.0 and row["flop_floor"] == 100.0 and row["floor_gflops"] == 300 / 6.0 / 1e9
    assert row["cpu_step_time_s"] == 1.0 and row["tokens_per_cpu_s"] == 30 / 3.0 and row["floor_gflops_cpu"] == 300 / 3.0 / 1e9


def test_chart_is_written(tiny_result, tmp_path):
    assert plot_chart(public_json(tiny_result), tmp_path / "b.png").stat().st_size > 0


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; rows with another mixed precision need it cleared (workers
    are fresh processes, these in-process checks are not)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_random_init_path_runs_with_synthetic_batches(tmp_path, fresh_accelerate_state):
    """The paper presets' path (random weights, bf16 frozen + fp32 trainable, checkpointing) at toy size."""
    from accelerate.state import AcceleratorState

    from lntune.bench.worker import run_job

    r = recipe("tiny", tmp_path, random_init=True)
    for impl in ("lntune", "hf-peft"):
        AcceleratorState._reset_state(reset_partial_state=True)
        row = run_job({"recipe": r, "impl": impl, "strategy": "layernorm", "warmup": 1, "steps": 1, "variant": ""})
        # batch 2 x (BOS + 16 image tokens + 12 text tokens), the last 5 supervised; vocabulary 37 with <image>
        assert [(s["tokens"], s["supervised"], s["images"]) for s in row["steps"]] == [(58, 10, 2)]
        assert row["trainable"] == NORMS + (16 * 32 + 32) + 2 * 37 * 32
        assert row["flop_floor"] == step_flop_floor(WeightGroups(**{**TINY.to_dict(), "head": 37 * 32, "projector_trained": 512,
                                                                    "head_trained": 37 * 32}), 58, 10, 2, 16)


def test_paper_presets_refuse_without_random_init_or_cuda(tmp_path):
    with pytest.raises(LntuneError, match="--random-init"):
        recipe("llava-llama2-7b", tmp_path)
    with pytest.raises(LntuneError, match="CUDA"):
        recipe("llava-llama2-7b", tmp_path, random_init=True, device="cpu")
    with pytest.raises(LntuneError, match="unknown bench preset 'huge'"):
        recipe("huge", tmp_path)
    with pytest.raises(LntuneError, match="no HF Trainer \\+ peft baseline"):
        run_bench("tiny", strategies=["layernorm"], baselines=["attn-qv"], workdir=tmp_path, progress=False)


def test_cli_runs_rows_in_their_own_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LNTUNE_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "lntune.cli", "bench", "--preset", "tiny", "--strategies", "layernorm-simple",
                          "--baselines", "none", "--variants", "none", "--steps", "1", "--warmup", "1", "--rounds", "1",
                          "--threads", "1", "--json", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert [(r["impl"], r["strategy"], r["trainable"]) for r in result["rows"]] == [("lntune", "layernorm-simple", NORMS)]
    assert result["rows"][0]["peak_mem_scope"] == "since reset" and result["settings"]["threads"] == 1
    assert json.loads((tmp_path / "out" / "bench.json").read_text()) == result
    assert (tmp_path / "out" / "bench.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "lntune.cli", "bench", "--preset", "llava-llama2-7b", "--random-init"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "needs a CUDA GPU" in bad.stderr


def test_compile_layers_compiles_each_decoder_block_in_place(tiny_recipe):
    """Wiring only (compiling itself takes ~half a minute; the loss and gradients were checked equal to eager
    by hand, see docs/benchmarks.md): every block gets a compiled call, parameters stay the same objects."""
    from lntune.bench.inputs import build, run_config
    from lntune.train.loss import SupervisedLoss, decoder_blocks

    model, _ = build(tiny_recipe, run_config(tiny_recipe, "layernorm"))
    before = [id(p) for p in model.parameters()]
    SupervisedLoss(model, compile_layers=True)
    blocks = decoder_blocks(model)
    assert len(blocks) == 2 and all(b._compiled_call_impl is not None for b in blocks)
    assert [id(p) for p in model.parameters()] == before
    assert SupervisedLoss(model).mllm is model


def test_a_row_out_of_gpu_memory_is_reported_not_fatal():
    oom = {"impl": "lntune", "strategy": "finetune", "variant": "", "oom": True, "error": "CUDA out of memory."}
    row = merge_rounds([oom])
    assert row["oom"] is True and row["step_time_s"] is None and row["peak_mem_mb"] is None
    simple = dict(impl="lntune", strategy="layernorm-simple", variant="", step_time_s=1.0, peak_mem_mb=1.0,
                  tokens_per_s=1.0, matmul_fraction=0.5)
    assert row_ratios([row, simple])["layernorm_simple_step_time_vs_finetune"] is None
    table = format_table({"settings": {"batch_size": 4, "steps": 1, "warmup": 1, "rounds": 1, "threads": 1},
                          "machine": {"cpu": "x", "cores": 1, "load_avg_before": None, "load_avg_after": None, "gpu": "H100"},
                          "preset": "llava-llama2-7b", "device": "cuda", "matmul_gflops": 1.0, "rows": [row],
                          "ratios": row_ratios([row]), "ratios_cpu_clock": row_ratios([row], "cpu")})
    assert "finetune" in table and "out of memory" in table


def test_threads_drop_to_one_on_a_busy_cpu(monkeypatch):
    from lntune.bench import runner as bench

    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    assert bench.choose_threads(None, "cpu", [2.5, 1.0, 1.0]) == (1, "load average 2.5 >= 2 cores: 1 thread per row")
    assert bench.choose_threads(None, "cpu", [1.5, 1.0, 1.0]) == (None, "torch's default")
    assert bench.choose_threads(None, "cuda", [9.0, 1.0, 1.0]) == (None, "torch's default")
    assert bench.choose_threads(2, "cpu", [9.0, 1.0, 1.0]) == (2, "--threads")
