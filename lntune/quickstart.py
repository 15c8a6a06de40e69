"""The main job on the embedded default: world → vision tower → stage 1 → stage 2 (LayerNorm) → evaluation.

    lntune quickstart --preset quick --out runs/quickstart      # what `make demo` runs (about 10 min on 2 cores
                                                                # with bf16, 15 in float32)
    lntune quickstart --preset smoke --out /tmp/qs              # ~3 min, part of the test suite

Offline. Re-running after a kill continues where it stopped (finished stages and evaluations are skipped).
Writes DIR/results.json ({"models": {name: {task: {metric: value}}}, "comparison": the paired difference of
the LayerNorm model against the stage-1 model (lntune.eval.compare), "grounding": ...}), DIR/report.md,
DIR/results.png and DIR/grounding/grounding.{json,png}: the LayerNorm model's yes-vs-no score on the POPE and
MME questions with true vs shuffled images (lntune.analysis.grounding), the report's shuffled-image control.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from lntune.errors import LntuneError
from lntune.locks import locked
from lntune.pipeline import EVAL_TASKS, evaluate_run, run_stage, stage_config
from lntune.presets import preset as preset_settings

# Chance levels where a benchmark defines one: MME random guessing gives acc 50% and acc+ 25% per subtask
# (75 points); POPE is balanced yes/no (50% accuracy).
MME_CHANCE_PER_SUBTASK = 75.0
POPE_CHANCE_ACCURACY = 50.0


@dataclass
class QuickstartPreset:
    """One entry of lntune/configs/presets/quickstart.yaml."""

    world: str  # the world preset
    stage1: list[str]  # overrides of configs/world/stage1.yaml
    stage2: list[str]  # overrides of configs/world/stage2_layernorm.yaml
    eval_limits: dict  # questions per task (per MME subtask / POPE split); absent: all
    control_limit: int | None  # questions per POPE split / MME subtask in the shuffled-image control
    eval_batch_size: int
    dtype: str = "float32"  # float32 | bfloat16 | auto (lntune.model.precision.fastest_dtype): training and evaluation


def get_preset(name: str) -> QuickstartPreset:
    settings = preset_settings("quickstart", name)
    if isinstance(settings["eval_limits"], int):  # one limit for every task
        settings["eval_limits"] = dict.fromkeys(EVAL_TASKS, settings["eval_limits"])
    return QuickstartPreset(**settings)


@locked("out", "quickstart")
def quickstart(preset: str, out: Path, train_tower: bool = False) -> dict:
    """Run the preset into `out`. The vision tower is the one lntune ships for the preset's world where there is
    one (lntune.world.shipped_tower), unless `train_tower`, which trains it here."""
    from lntune.world.cache import ensure_vision_tower, ensure_world
    from lntune.world.shipped_tower import is_shipped_copy

    p = get_preset(preset)
    # Training runs on the GPU where there is one; the evaluations below run on the CPU.
    train_dtype, dtype = resolve_dtype(p.dtype, training=True), resolve_dtype(p.dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    started = time.perf_counter()

    def timed(label, fn):
        t0 = time.perf_counter()
        print(f"\n== {label}")
        value = fn()
        timings[label] = round(time.perf_counter() - t0, 1)
        return value

    world = timed("world", lambda: ensure_world(p.world, 0))
    tower = timed("vision tower", lambda: ensure_vision_tower(world, "contrastive", 0, pretrained=not train_tower))
    common = [f"world.preset={p.world}", "world.seed=0"]
    if train_dtype == "bfloat16":  # frozen weights in bf16, trained tensors in fp32 under bf16 autocast
        common += ["model.dtype=bfloat16", "train.mixed_precision=bf16"]
    stage1 = timed("stage 1: projector", lambda: run_stage(
        stage_config("world/stage1", common + p.stage1 + [f"output_dir={out / 'stage1'}"])))
    stage2 = timed("stage 2: layernorm", lambda: run_stage(
        stage_config("world/stage2_layernorm", common + p.stage2 + [f"output_dir={out / 'stage2-layernorm'}",
                                                                   f"model.base={stage1}"])))
    models = {}
    for name, run_dir in (("stage-1 (connector only)", stage1), ("LayerNorm", stage2)):
        models[name] = timed(f"evaluate {name}", lambda run_dir=run_dir, name=name: evaluate_run(
            run_dir, out / "eval" / Path(run_dir).name, world / "eval", tasks=EVAL_TASKS, limit=p.eval_limits,
            batch_size=p.eval_batch_size, name=name, image_root=world / "images", progress=True, dtype=dtype))
    grounding = timed("shuffled-image control: LayerNorm", lambda: grounding_control(
        stage2, world / "eval", world / "images", out / "grounding", limit=p.control_limit,
        batch_size=p.eval_batch_size, dtype=dtype))
    from lntune.eval.compare import compare_eval_dirs

    comparison = timed("paired comparison", lambda: compare_eval_dirs(
        out / "eval" / Path(stage1).name, out / "eval" / Path(stage2).name))
    timings["total"] = round(time.perf_counter() - started, 1)
    results = {"preset": preset, "world": str(world), "tower": {"path": str(tower), "shipped": is_shipped_copy(tower)},
               "dtype": {"train": train_dtype, "eval": dtype},
               "models": models, "comparison": comparison,
               "chance": chance_levels(models), "grounding": {"model": "LayerNorm", **grounding},
               "timings_s": timings}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    from lntune.reporting import plot_model_comparison, write_quickstart_report

    plot_model_comparison(models, results["chance"], out / "results.png")
    report = write_quickstart_report(results, out / "report.md")
    print("\n" + report)
    return results


def resolve_dtype(dtype: str, training: bool = False) -> str:
    """A preset's dtype, with "auto" resolved for where the work runs: training on the GPU when there is one,
    evaluation on the CPU."""
    import torch

    from lntune.model.precision import fastest_dtype

    if dtype == "auto":
        return fastest_dtype("cuda" if training and torch.cuda.is_available() else "cpu")
    if dtype not in ("float32", "bfloat16"):
        raise LntuneError(f"quickstart preset: dtype must be float32, bfloat16 or auto, got {dtype!r}")
    return dtype


def grounding_control(run_dir, data_root, image_root, out: Path, limit=None, batch_size=16, seed=0,
                      dtype: str = "float32", tasks: tuple[str, ...] = ("pope", "mme"), progress: bool = True) -> dict:
    """The run's yes-vs-no scores with true vs shuffled images (summary without per-question scores); written to
    out/grounding.json and out/grounding.png, and read back from there when already done."""
    from lntune.analysis.grounding import grounding_scores
    from lntune.analysis.plots import plot_grounding
    from lntune.jsonio import load_json
    from lntune.model.load import load_mllm

    done = Path(out) / "grounding.json"
    if done.is_file():
        result = load_json(done, "grounding scores")
    else:
        import torch

        model, processor = load_mllm(run_dir, dtype=getattr(torch, dtype))
        result = grounding_scores(model.eval(), processor, data_root, image_root=image_root, seed=seed,
                                  batch_size=batch_size, limit=limit, progress=progress, tasks=tasks)
        Path(out).mkdir(parents=True, exist_ok=True)
        plot_grounding(result, Path(out) / "grounding.png")
        done.write_text(json.dumps(result, indent=2) + "\n")
    return {k: v for k, v in result.items() if k != "questions"}


def chance_levels(models: dict) -> dict:
    """The score of a random guesser, per task where one is defined."""
    any_model = next(iter(models.values()))
    mme_subtasks = len(any_model.get("mme", {}).get("subtasks", {})) or 4
    return {"mme_perception": MME_CHANCE_PER_SUBTASK * mme_subtasks, "pope_accuracy": POPE_CHANCE_ACCURACY}
