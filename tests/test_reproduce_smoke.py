"""`lntune reproduce`'s orchestration end to end on tiny random models and the smoke world (~1-2 min):
every planned run, evaluation and analysis happens, the report has every section and verdict, and a second
run finds everything done."""

import json

import pytest

from lntune.reproduce.experiments import ReproducePreset, plan
from lntune.reproduce.paper_values import claims
from lntune.reproduce.runner import reproduce
from lntune.strategies import PAPER_STRATEGIES as STRATEGIES
from tiny_models import SPECIALS, TEXT_DIMS, save_tiny_vision, word_level_llama

pytestmark = pytest.mark.slow


def save_world_llm(path, world):
    """A tiny random Llama whose word-level tokenizer knows every word of the world's training texts, so
    label masking round-trips them (the tests' generic tiny tokenizer would turn them into <unk>)."""
    words = {"user", "assistant", "system", "Yes", "No", "yes", "no"}  # the first-token yes/no score's words
    for name in ["pretrain.json", *(f"instruct/{t}.json" for t in ("conversation", "detail", "complex_reasoning"))]:
        for record in json.loads((world / name).read_text()):
            for turn in record["conversations"]:
                words.update(w for w in turn["value"].split() if w != "<image>")
    model, tokenizer = word_level_llama(SPECIALS + sorted(words), TEXT_DIMS)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_preset(root) -> ReproducePreset:
    from lntune.world.cache import ensure_world

    llm, vision = save_world_llm(root / "llm", ensure_world("smoke", 0)), save_tiny_vision(root / "vision")
    classifier = save_tiny_vision(root / "vision-cls", seed=1)
    swept = ("finetune", "layernorm", "layernorm-simple")  # the others train at one fixed learning rate
    return ReproducePreset(
        name="tiny", world="smoke", seeds=(0, 1),
        lrs={s: (1e-2, 1e-3) if s in swept else (1e-3,) for s in STRATEGIES},
        default_lrs={s: 1e-3 for s in STRATEGIES}, grounding_limit=3,
        stage1=["train.max_steps=2", "train.batch_size=4", "train.save_steps=null", "model.projector_init_steps=5"],
        stage2=["train.max_steps=3", "train.batch_size=4", "train.save_steps=null"],
        mix_samples=12, subset_samples=8, connector_lr=1e-2, sweep_limit=2, eval_limit=2, eval_batch_size=8,
        track_layers=[0, 1], similarity_samples=4, bench_preset="tiny", bench_isolate=False, count_presets=False,
        model=[f"model.llm={llm}", f"model.vision={vision}"], model_classification=[f"model.vision={classifier}"])


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread (no OpenMP barriers)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore:.*no results for MME subtask")
def test_reproduce_tiny_end_to_end(tmp_path, one_thread):
    preset = tiny_preset(tmp_path / "models")
    out = tmp_path / "repro"
    first = reproduce(preset, out, progress=False)
    jobs = plan(preset, out)
    assert set(first["jobs"]) == {job.key for job in jobs}
    # the smoke world is cached and the models are given: no world or tower job had anything to do
    assert {key for key, record in first["jobs"].items() if "measured_s" not in record} <= \
        {"world", "tower/contrastive", "tower/classification"}
    assert {key for key, record in first["jobs"].items() if "measured_s" in record} >= \
        {job.key for job in jobs if job.key.startswith(("train/", "eval", "sweep/"))}

    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"finetune", "lora", "attn-qv", "attn-mlp", "layernorm", "layernorm-simple",
                                      "subset-conversation", "subset-detail", "subset-complex_reasoning",
                                      "table4-connector", "table4-layernorm", "table5-finetune", "table5-layernorm"}
    for name, runs in results["models"].items():
        assert len(runs) == (2 if name in STRATEGIES else 1), name  # seeds 0 and 1 for the Table 1 strategies
        for metrics in runs:
            assert set(metrics) == {"mme", "vqav2", "coco", "flickr30k", "pope"}
        assert set(results["resampled"][name]) == {"mme", "vqav2", "coco", "flickr30k", "pope"}
        assert all(len(draws) == 1000 for draws in results["resampled"][name].values())
    assert set(results["sweeps"]) == {"finetune", "layernorm", "layernorm-simple"}
    assert not (out / "sweep" / "lora").exists()
    for strategy, sweep in results["sweeps"].items():
        assert [row["lr"] for row in sweep["rows"]] == [1e-2, 1e-3]
        assert sweep["best"]["metric"] == max(row["metric"] for row in sweep["rows"])
        assert (out / "sweep" / strategy / "sweep.png").is_file()
    # the Table 5 runs start from the classification tower's own stage 1
    base = json.loads((out / "table5" / "layernorm" / "lntune.json").read_text())["base"]
    from lntune.fingerprint import model_fingerprint

    assert base == {"kind": "run", "path": {"absolute": str((out / "stage1-classification").resolve()),
                                            "relative": "../../stage1-classification"},
                    "weights": model_fingerprint(out / "stage1-classification")}
    # the subsets train on one type each, at layernorm's best learning rate
    subset = json.loads((out / "subsets" / "detail" / "run_config.json").read_text())
    assert subset["data"]["path"].endswith("instruct/detail.json") and subset["data"]["max_samples"] == 8
    assert subset["train"]["lr"] == results["sweeps"]["layernorm"]["best"]["lr"]
    # the second seed: its own run at the strategy's learning rate (the sweep's best, or the fixed one)
    second = json.loads((out / "table1" / "layernorm" / "seed-1" / "run_config.json").read_text())
    assert second["train"]["seed"] == 1 and second["train"]["lr"] == results["sweeps"]["layernorm"]["best"]["lr"]
    lora = json.loads((out / "table1" / "lora" / "seed-0" / "run_config.json").read_text())
    assert lora["train"]["seed"] == 0 and lora["train"]["lr"] == 1e-3
    assert [len(v) for v in results["similarity_per_seed"].values()] == [2, 2]
    # every Table 1 model has its shuffled-image control: 3 questions per POPE split, true vs shuffled
    assert {s: [r["seed"] for r in runs] for s, runs in results["grounding"].items()} == {s: [0, 1] for s in STRATEGIES}
    assert {r["n"] for runs in results["grounding"].values() for r in runs} == {9}
    assert results["machine"]["cores"] >= 1
    assert [r["seed"] for r in results["gradients_per_seed"]] == [0, 1]
    # Table 2: counts on the measured model (the 7B/13B presets are tests/test_accounting.py's)
    params = results["params"]
    trainable = {s: row["trainable"] for s, row in params["measured"]["strategies"].items()}
    base = trainable["layernorm"] - trainable["layernorm-simple"]  # projector + embeddings + head
    assert trainable["layernorm-simple"] == 2 * 2 * 16  # 2 layers x 2 norms x hidden 16
    assert trainable["attn-qv"] - base == 2 * (16 * 16 + 16 * 8)  # q: 16->16, v: 16->8 (1 kv head of 8)
    assert trainable["attn-mlp"] - base == 2 * 3 * 16 * 32
    assert trainable["finetune"] > trainable["attn-mlp"]
    assert params["presets"] == {}
    assert set(results["bench"]["rows"]) == {"finetune", "lora", "attn-qv", "attn-mlp", "layernorm", "layernorm-simple"}
    assert set(results["similarity"]) == {"finetune", "layernorm"} and results["similarity"]["layernorm"]["layers"] == 2
    assert {(r["layer"], r["norm"]) for r in results["gradients"]} == \
        {(0, "input_layernorm"), (0, "post_attention_layernorm"), (1, "input_layernorm"), (1, "post_attention_layernorm")}
    # step 1 (warm-up, lr 0) has identical gradients in both runs; the later steps differ
    assert any(r["mean_of_std_ratio"] != 1.0 for r in results["gradients"])

    report = (out / "report.md").read_text()
    for claim in claims():
        assert f"**{claim['id']}**" in report
    for heading in ("## Table 1", "### Grounding", "## Table 2", "## Figure 2 and Table 3", "## Table 4", "## Table 5", "## Table 6",
                    "## Figure 4", "## Budget"):
        assert heading in report
    assert "MME cognition" not in report or "untestable" in report
    for png in ("table1.png", "table2.png", "sweeps.png", "fig2_subsets.png", "fig3_similarity.png",
                "fig4_gradients.png"):
        assert (out / "figures" / png).stat().st_size > 0, png
        assert f"figures/{png}" in report

    # resumed: nothing is redone (no job gets a new measurement) and the results are the same
    records = json.loads((out / "jobs.json").read_text())
    second = reproduce(preset, out, progress=False)
    assert second["jobs"] == records
    assert json.loads((out / "results.json").read_text())["models"] == results["models"]
    # as if killed mid-way: a training run and an evaluation lost; only they (and what reads them) are redone
    import shutil

    shutil.rmtree(out / "eval" / "lora" / "seed-1")
    for name in ("trainable.safetensors", "lntune.json"):
        (out / "table4" / "connector" / name).unlink()
    before = json.loads((out / "jobs.json").read_text())
    reproduce(preset, out, progress=False)
    after = json.loads((out / "jobs.json").read_text())
    assert {key for key in after if after[key] != before[key]} == {"eval/lora/seed-1", "train/table4/connector"}
    assert (out / "table4" / "connector" / "trainable.safetensors").is_file()
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()

    # the report alone, read back from what is on disk
    (out / "report.md").unlink()
    reproduce(preset, out, progress=False, report_only=True)
    assert (out / "report.md").read_text() == report


@pytest.mark.filterwarnings("ignore:.*no results for MME subtask")
def test_reproduce_only_table1_of_one_strategy_and_seed(tmp_path, one_thread, capsys):
    """`--only table1 --strategies layernorm --seeds 0 --no-sweep`: one model, its evaluation and its control; the
    report shows what was run and says the rest is untestable."""
    from lntune.reproduce.experiments import restricted
    from lntune.reproduce.runner import plan_text

    preset = restricted(tiny_preset(tmp_path / "models"), only=["table1"], strategies=["layernorm"], seeds=[0],
                        no_sweep=True)
    out = tmp_path / "repro"
    text = plan_text(preset, out)
    assert "layernorm seed 0" in text and "planned:" in text and "lora" not in text
    outcome = reproduce(preset, out, progress=False)
    assert set(outcome["jobs"]) == {"world", "tower/contrastive", "train/stage1", "train/layernorm/seed-0",
                                    "eval/layernorm/seed-0", "grounding/layernorm/seed-0"}
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"layernorm"} and set(results["grounding"]) == {"layernorm"}
    run = json.loads((out / "table1" / "layernorm" / "seed-0" / "run_config.json").read_text())
    assert run["train"]["lr"] == 1e-3 and run["data"]["path"].endswith("instruct/paper_mix.json")
    report = (out / "report.md").read_text()
    assert "### Grounding" in report and "| LayerNorm | 1 |" in report and "**untestable**" in report
    assert "done " in plan_text(preset, out)
