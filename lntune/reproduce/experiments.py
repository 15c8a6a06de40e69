"""The reproduction plan: which runs, evaluations and analyses `lntune reproduce` makes, and what each costs.

    from lntune.reproduce.experiments import get_preset, plan
    jobs = plan(get_preset("world-quick"), out=Path("runs/reproduce"))
    sum(job.cost_s for job in jobs) / 60          # the planned budget in minutes (idle 2-core CPU)

A preset (lntune/configs/presets/reproduce.yaml) says how big every piece is (world, seeds, learning rates, steps,
evaluation limits); `plan` turns it into an ordered list of `Job`s. Each job has a `done(ctx)` check on disk and
an `action(ctx)` that does the work (skipping whatever is already finished) and returns a JSON-able result;
lntune/reproduce/runner.py runs them with one progress bar weighted by `cost_s`.

The experiments, mapped to the paper:

    stage 1 (connector) once per vision tower                        (Sec. 3)
    stage 2 x {finetune, lora, attn-qv, attn-mlp, layernorm, layernorm-simple}: a strategy with a grid of
        several lrs is swept at the first seed (each run evaluated on Flickr30k, the best lr kept), one
        with a single lr is not; then every seed trains at that lr (the train config's seed: the data
        subset and order, the init of new parameters) and is evaluated in full      (Table 1, A1)
    layernorm on equal-size conversation / detail / complex-reasoning subsets                (Fig. 2, Table 3)
    connector-only, and norms-only with the connector frozen                                  (Table 4)
    stage 1 + finetune + layernorm on the classification-pretrained tower                     (Table 5)
    every model on the five world benchmarks; parameter counts, memory (lntune bench);
    layer similarity and norm-gradient statistics of finetune vs layernorm, every seed       (Table 2, 6, Fig. 3, 4)

Stage 1, the vision towers, the subsets and Tables 4 and 5 use the first seed only (one shared stage-1 model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lntune.data.records import INSTRUCT_TYPES as SUBSET_TYPES
from lntune.errors import LntuneError
from lntune.jsonio import load_json
from lntune.presets import preset as preset_settings
from lntune.strategies import PAPER_STRATEGIES as STRATEGIES
from lntune.sweep import PAPER_GRID
SELECT_TASK = "flickr30k"

# Training seconds per sample of each strategy relative to layernorm's `seconds_per_sample` (frozen weights need no
# weight gradients), fitted to the wall clock of each run of an earlier world-quick reproduction on a 2-core x86 CPU
# (80 samples per stage-2 run, 640 in stage 1, which also warm-starts the projector). Only the progress bar's ETA
# and the planned budget use these.
STEP_COST = {"finetune": 1.6, "lora": 1.65, "attn-qv": 1.0, "attn-mlp": 1.5, "layernorm": 1.0,
             "layernorm-simple": 0.85, "connector": 0.9, "stage1": 1.1}
# Evaluation seconds per question (per image for captions) of SmolLM2-135M with the world tower, batch 32, measured
# on a LayerNorm model of the paper's mix, which answers in sentences, on an idle 2-core x86 CPU in float32 (its
# timing.json; training 1,024 samples took 395 s there, against 0.40 s a sample planned).
EVAL_SECONDS = {"mme": 0.056, "pope": 0.048, "vqav2": 0.14, "coco": 0.57, "flickr30k": 0.69}


@dataclass
class ReproducePreset:
    name: str
    world: str  # world preset (lntune/configs/presets/world.yaml)
    lrs: dict[str, tuple[float, ...]]  # stage-2 learning rates per strategy: several are swept, one is used as is
    stage1: list[str]  # overrides of configs/world/stage1.yaml
    stage2: list[str]  # overrides shared by every stage-2 run (steps, samples, batch)
    mix_samples: int | None  # samples of the instruct mix per stage-2 run (None: all)
    subset_samples: int  # samples of each one-type subset (the paper: 20K against an 80K mix)
    connector_lr: float  # Table 4's connector-only run (the paper's stage-1 lr)
    sweep_limit: int | None  # Flickr30k test images per sweep evaluation
    eval_limit: int | dict | None  # questions per task (per MME subtask / POPE split; images for captions) in
    # the final evaluations: one number for every task, or {task: number} (a task not named is evaluated in full)
    eval_batch_size: int
    track_layers: list[int]  # decoder layers whose norm gradients are recorded (the paper's 11th and 21st)
    similarity_samples: int
    bench_preset: str | None  # `lntune bench` preset for the memory column; None skips it
    bench_isolate: bool = True  # one process per strategy (own peak memory); False: in this process (tests)
    count_presets: bool = True  # count the 7B/13B presets for Table 2 (a minute: peft on a 13B meta model)
    seeds: tuple[int, ...] = (0,)  # train seeds of the Table 1 strategies (the first also for everything else)
    model: list[str] = field(default_factory=list)  # model overrides (the smoke test's tiny random models)
    model_classification: list[str] = field(default_factory=list)  # the same for the Table 5 tower
    seconds_per_sample: float = 0.40  # SmolLM2 training, layernorm, paper_mix (87 tokens a sample), idle 2 cores,
    # float32 (STEP_COST scales it per strategy)
    seconds_per_load: float = 3.0  # building/loading a model for a run or an evaluation
    tower_seconds: float = 60.0  # training one world vision tower when not cached
    bench_seconds: float = 125.0
    default_lrs: dict[str, float] = field(default_factory=dict)  # --no-sweep: one lr per strategy (the one the
    # sweep chose when the preset was last measured)
    grounding_limit: int | None = 100  # POPE questions per split in each Table 1 model's shuffled-image control
    mix: str = "paper_mix"  # the stage-2 file of Table 1, 4 and 5 (instruct/<mix>.json)
    strategies: tuple[str, ...] = STRATEGIES  # the Table 1 strategies (--strategies)
    only: tuple[str, ...] = ()  # experiments to run (--only); empty: all
    seconds_per_control_question: float = 0.05  # the shuffled-image control, per question (true + shuffled)

    def grid(self, strategy: str) -> tuple[float, ...]:
        return self.lrs[strategy]

    def swept(self, strategy: str) -> bool:
        return len(self.grid(strategy)) > 1

    @property
    def norms_only_is_simple(self) -> bool:
        """Table 4's norms-only model is layernorm-simple's first-seed run, known before anything runs: layernorm
        without the base set trains the same parameters, and neither is swept and their learning rates agree."""
        return not (self.swept("layernorm") or self.swept("layernorm-simple")) and \
            self.grid("layernorm") == self.grid("layernorm-simple")

    def eval_questions(self, limit: int | dict | None) -> dict[str, int]:
        """{task: questions one evaluation at `limit` asks} (images for captions; MME: 4 subtasks, POPE: 3 splits)."""
        from lntune.world.presets import get_preset

        w = get_preset(self.world)
        per_part = {"mme": 2 * w.mme_images, "vqav2": w.vqav2_questions, "coco": w.karpathy_test,
                    "flickr30k": w.karpathy_test, "pope": 6 * w.pope_images}  # per subtask / split
        parts = {"mme": 4, "pope": 3}
        return {t: parts.get(t, 1) * min(n, _limit_of(limit, t) or n) for t, n in per_part.items()}

    def eval_seconds(self, limit: int | dict | None, tasks=tuple(EVAL_SECONDS)) -> float:
        """Planned seconds of one evaluation of `tasks` at `limit` (model loading included)."""
        questions = self.eval_questions(limit)
        return self.seconds_per_load + sum(EVAL_SECONDS[t] * questions[t] for t in tasks)


def _limit_of(limit: int | dict | None, task: str) -> int | None:
    return limit.get(task) if isinstance(limit, dict) else limit


def _override(overrides: list[str], key: str, default):
    """The value a list of `key=value` overrides gives `key` (the last one wins), else `default`."""
    values = [item.split("=", 1)[1] for item in overrides if item.startswith(key + "=")]
    return type(default)(values[-1]) if values and values[-1] not in ("null", "") else default


def _samples_seen(samples: int | None, world: str, overrides: list[str], file: str = "paper_mix") -> int:
    """Samples one run trains on: its data size times its epochs, cut at max_steps x batch_size."""
    if samples is None:
        from lntune.world.generate import PAPER_MIX_TYPES
        from lntune.world.presets import get_preset

        p = get_preset(world)
        per_file = {"paper_mix": len(PAPER_MIX_TYPES) * p.instruct_per_type, "vqa": p.vqa_samples,
                    "mixed": len(SUBSET_TYPES) * p.instruct_per_type + p.vqa_samples}
        samples = per_file.get(file, p.instruct_per_type)
    batch = _override(overrides, "train.batch_size", 16)
    steps = max(1, samples // batch) * _override(overrides, "train.epochs", 1)
    return batch * min(steps, _override(overrides, "train.max_steps", steps))


def get_preset(name: str) -> ReproducePreset:
    """The preset `name` of lntune/configs/presets/reproduce.yaml."""
    data = preset_settings("reproduce", name)
    seeds = _check_seeds(tuple(int(s) for s in data.get("seeds", [0])), f"reproduce preset {name}")
    defaults = {s: float(lr) for s, lr in (data.get("default_lrs") or {}).items()}
    return ReproducePreset(name=name, **{**data, "lrs": strategy_lrs(data["lrs"], name), "seeds": seeds,
                                         "default_lrs": defaults})


def _check_seeds(seeds: tuple[int, ...], where: str) -> tuple[int, ...]:
    if not seeds or len(set(seeds)) != len(seeds):
        raise LntuneError(f"{where}: seeds must be a non-empty list of different integers, got {list(seeds)}")
    return seeds


EXPERIMENTS = ("table1", "sweeps", "fig2", "table3", "table4", "table5", "table2", "bench", "similarity",
               "gradients")
"""What `--only` selects. table2 is the parameter counts, bench its memory and step-time columns."""
NEEDS_STRATEGIES = {"table3": ("finetune", "layernorm"), "table4": ("layernorm", "layernorm-simple"),
                    "table5": ("finetune", "layernorm"), "fig2": ("layernorm",),
                    "similarity": ("finetune", "layernorm"), "gradients": ("finetune", "layernorm")}
"""The Table 1 strategies an experiment reads (their runs, or their learning rates)."""


def restricted(p: ReproducePreset, only=None, strategies=None, seeds=None, no_sweep: bool = False) -> ReproducePreset:
    """The preset narrowed by `lntune reproduce`'s options: `only` experiments (EXPERIMENTS), Table 1 `strategies`
    and `seeds`, and `no_sweep` (each strategy at the preset's default_lrs). An experiment that reads a strategy left
    out by `strategies` is dropped when `only` does not name it, refused when it does."""
    from dataclasses import replace

    only = tuple(only or ())
    unknown = [e for e in only if e not in EXPERIMENTS]
    if unknown:
        raise LntuneError(f"--only: unknown experiment {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    chosen = tuple(strategies or p.strategies)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        raise LntuneError(f"--strategies: unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    wanted = only or EXPERIMENTS
    missing = {e: [s for s in NEEDS_STRATEGIES.get(e, ()) if s not in chosen] for e in wanted}
    refused = [f"{e} (needs {', '.join(m)})" for e, m in missing.items() if m and e in only]
    if refused:
        raise LntuneError(f"--only {', '.join(only)} with --strategies {', '.join(chosen)}: "
                          f"{'; '.join(refused)} reads strategies that are not selected")
    lrs = p.lrs
    if no_sweep:
        absent = [s for s in STRATEGIES if s not in p.default_lrs]
        if absent:
            raise LntuneError(f"reproduce preset {p.name} has no default_lrs for {', '.join(absent)}; "
                              f"run with the sweep")
        lrs = {s: (p.default_lrs[s],) for s in STRATEGIES}
    return replace(p, strategies=tuple(s for s in STRATEGIES if s in chosen), lrs=lrs,
                   seeds=_check_seeds(tuple(seeds), "--seeds") if seeds else p.seeds,
                   only=tuple(e for e in wanted if not missing[e]))


def strategy_lrs(lrs, name: str = "") -> dict[str, tuple[float, ...]]:
    """{strategy: learning rates} from a preset's `lrs`: "paper" (the paper's 11-value grid for every strategy),
    one list for every strategy, or {strategy: list or number}."""
    if lrs == "paper":
        return {s: tuple(PAPER_GRID) for s in STRATEGIES}
    if isinstance(lrs, dict):
        missing = [s for s in STRATEGIES if s not in lrs]
        if missing:
            raise LntuneError(f"reproduce preset {name}: lrs has no learning rate for {', '.join(missing)}")
        return {s: tuple(float(lr) for lr in (v if isinstance(v, (list, tuple)) else [v])) for s, v in lrs.items()}
    return {s: tuple(float(lr) for lr in lrs) for s in STRATEGIES}


@dataclass
class Job:
    key: str  # unique and stable: the runner's state file and the report refer to jobs by it
    label: str  # shown beside the progress bar
    cost_s: float  # planned seconds on an idle 2-core CPU
    done: Callable[["Context"], bool]
    action: Callable[["Context"], Any]
    needed_by: frozenset = frozenset(EXPERIMENTS)  # the experiments that read this job's output


@dataclass
class Context:
    """What jobs share: the preset, the output folder, and the results of jobs run before them."""

    preset: ReproducePreset
    out: Path
    results: dict = field(default_factory=dict)  # job key -> the job's returned value
    threads: int | None = None  # torch threads (None: torch's default), also given to the bench workers

    @property
    def common(self) -> list[str]:
        return [f"world.preset={self.preset.world}", "world.seed=0", *self.preset.model]

    def world(self) -> Path:
        from lntune.world.cache import ensure_world

        return ensure_world(self.preset.world, 0, progress=False)

    def eval_root(self) -> Path:
        return self.world() / "eval"


def seed_tag(seed: int) -> str:
    return f"seed-{seed}"


def seed_run_dir(out: Path, strategy: str, seed: int) -> Path:
    """Where a Table 1 strategy's run of `seed` lives (unless it is the sweep's best run)."""
    return Path(out) / "table1" / strategy / seed_tag(seed)


def model_evals(p: ReproducePreset, out: Path) -> dict[str, list[tuple[int, str, Path]]]:
    """{model: [(seed, evaluation job key, evaluation folder)]} of every model the report shows: the Table 1
    strategies once per seed, the other experiments at the first seed."""
    out = Path(out)
    models = {s: [(seed, f"eval/{s}/{seed_tag(seed)}", out / "eval" / s / seed_tag(seed)) for seed in p.seeds]
              for s in p.strategies}
    others = [*(f"subset-{t}" for t in SUBSET_TYPES), "table4-connector", "table4-layernorm", "table5-finetune",
              "table5-layernorm"]
    models.update({name: [(p.seeds[0], f"eval/{name}", out / "eval" / name)] for name in others})
    if p.norms_only_is_simple and "layernorm-simple" in models:
        models["table4-layernorm"] = models["layernorm-simple"][:1]
    return models


# ------------------------------------------------------------------------------------------- job makers

def _trained(run_dir: Path) -> Callable[[Context], bool]:
    from lntune.run_dir import RunDir

    return lambda ctx: RunDir(run_dir).finished


def _evaluated(out_dir: Path, tasks) -> Callable[[Context], bool]:
    def done(ctx):
        path = out_dir / "metrics.json"
        return path.is_file() and all(t in load_json(path, "evaluation metrics") for t in tasks)
    return done


def _file(path: Path) -> Callable[[Context], bool]:
    return lambda ctx: path.is_file()


def train_job(key: str, label: str, config_name: str, overrides: Callable[[Context], list[str]], run_dir: Path,
              samples: int, strategy: str, p: ReproducePreset) -> Job:
    """A training run; `overrides(ctx)` is called when the job starts (it may read earlier results)."""
    from lntune.pipeline import run_stage, stage_config

    def action(ctx):
        return str(run_stage(stage_config(config_name, [*overrides(ctx), f"output_dir={run_dir}"])))

    cost = p.seconds_per_load + samples * p.seconds_per_sample * STEP_COST[strategy]
    return Job(key, label, cost, _trained(run_dir), action)


def eval_job(key: str, label: str, run_dir: Callable[[Context], Path], out_dir: Path, tasks, limit, seconds: float,
             p: ReproducePreset) -> Job:
    from lntune.pipeline import evaluate_run

    def action(ctx):
        return evaluate_run(run_dir(ctx), out_dir, ctx.eval_root(), tasks=tuple(tasks), limit=limit,
                            batch_size=p.eval_batch_size, name=key.split("/", 1)[1],
                            image_root=ctx.world() / "images", progress=False)

    return Job(key, label, seconds, _evaluated(out_dir, tasks), action)


def grounding_dir(out: Path, strategy: str, seed: int) -> Path:
    """Where a Table 1 model's shuffled-image control lives."""
    return Path(out) / "grounding" / strategy / seed_tag(seed)


def plan(p: ReproducePreset, out: Path) -> list[Job]:
    """Every job of the reproduction, in the order they run (later jobs read earlier jobs' results), narrowed to
    the jobs that `p.only`'s experiments read."""
    jobs = _all_jobs(p, Path(out))
    wanted = set(p.only or EXPERIMENTS)
    return [job for job in jobs if job.needed_by & wanted]


def _all_jobs(p: ReproducePreset, out: Path) -> list[Job]:
    from lntune.pipeline import EVAL_TASKS
    from lntune.sweep import lr_tag

    jobs: list[Job] = []
    # samples each kind of run trains on (what its planned cost scales with)
    samples = _samples_seen(p.mix_samples, p.world, p.stage2, p.mix)
    subset_samples = _samples_seen(p.subset_samples, p.world, p.stage2, "subset")
    stage1_samples = _stage1_samples(p)
    full_seconds = p.eval_seconds(p.eval_limit)
    sweep_seconds = p.eval_seconds(p.sweep_limit, (SELECT_TASK,))
    mix = [f"data.path=${{world}}/instruct/{p.mix}.json"]
    mix += [f"data.max_samples={p.mix_samples}"] if p.mix_samples else []
    tracked = [f"train.track_grads=[{','.join(map(str, p.track_layers))}]"] if p.track_layers else []
    first = p.seeds[0]
    runs_read = {"similarity", "gradients"}

    def table1_readers(strategy: str, seed: int) -> set[str]:
        """The experiments that read a Table 1 model's evaluation (besides Table 1)."""
        readers = {"table1"}
        if seed == first and strategy in ("finetune", "layernorm"):
            readers |= {"table3", "table5"}
        if seed == first and (strategy == "layernorm" or (strategy == "layernorm-simple" and p.norms_only_is_simple)):
            readers.add("table4")
        return readers

    def lr_readers(strategy: str) -> set[str]:
        """The experiments that read a strategy's learning rate (so its sweep, when it has one)."""
        readers = {"sweeps"} | table1_readers(strategy, first)
        readers |= runs_read if strategy in ("finetune", "layernorm") else set()
        readers |= {"fig2", "table3", "table4"} if strategy == "layernorm" else set()
        readers |= {"table4"} if strategy == "layernorm-simple" else set()
        readers |= {"table5"} if strategy in ("finetune", "layernorm") else set()
        return readers

    def tag(job: Job, readers) -> Job:
        job.needed_by = frozenset(readers)
        return job

    # --- world, towers, stage 1 (one per tower)
    jobs.append(Job("world", "world", 5.0, _world_done, lambda ctx: str(ctx.world())))

    def tower_job(objective):
        return Job(f"tower/{objective}", f"vision tower ({objective})", 0.0 if p.model else p.tower_seconds,
                   lambda ctx: _tower_done(ctx, objective), lambda ctx: _tower(ctx, objective))

    training = set(EXPERIMENTS) - {"bench"}
    jobs.append(tag(tower_job("contrastive"), training))
    stage1 = {"contrastive": out / "stage1", "classification": out / "stage1-classification"}
    jobs.append(tag(train_job("train/stage1", "stage 1 (connector)", "world/stage1",
                              lambda ctx: [*ctx.common, *p.stage1], stage1["contrastive"], stage1_samples, "stage1", p),
                    training))

    def stage2(strategy, extra=(), tower="contrastive"):
        base = stage1[tower]
        cls = ["world.vision_objective=classification", *p.model_classification] if tower == "classification" else []
        return lambda ctx: [*ctx.common, *cls, *p.stage2, f"model.base={base}", *extra]

    # --- Table 1 / A1: every strategy on the paper's mix; a grid of several lrs is swept at the first seed
    for strategy in p.strategies:
        grads = tracked if strategy in ("finetune", "layernorm") else []
        if p.swept(strategy):
            for lr in p.grid(strategy):
                run_dir = out / "sweep" / strategy / lr_tag(lr)
                make = stage2(strategy, [*mix, *grads, f"train.seed={first}", f"train.lr={lr}"])
                jobs.append(tag(train_job(f"train/sweep/{strategy}/{lr_tag(lr)}", f"{strategy} lr {lr:.0e}",
                                          f"world/stage2_{strategy}", make, run_dir, samples, strategy, p),
                                lr_readers(strategy)))
                jobs.append(tag(eval_job(f"eval-sweep/{strategy}/{lr_tag(lr)}",
                                         f"{strategy} lr {lr:.0e}: {SELECT_TASK}", lambda ctx, d=run_dir: d,
                                         run_dir / "eval", (SELECT_TASK,), p.sweep_limit, sweep_seconds, p),
                                lr_readers(strategy)))
            jobs.append(tag(Job(f"sweep/{strategy}", f"{strategy}: pick the lr", 1.0,
                                _file(out / "sweep" / strategy / "sweep.json"),
                                lambda ctx, s=strategy, g=grads: _summarize_sweep(ctx, s, [*mix, *g,
                                                                                           f"train.seed={first}"])),
                            lr_readers(strategy)))
        for seed in p.seeds:
            if not (p.swept(strategy) and seed == first):  # the sweep's best run is the first seed's model
                make = lambda ctx, s=strategy, g=grads, sd=seed: [*stage2(s, [*mix, *g, f"train.seed={sd}"])(ctx),
                                                                  f"train.lr={best_lr(ctx, s)}"]
                readers = table1_readers(strategy, seed) | (runs_read if strategy in ("finetune", "layernorm")
                                                             else set())
                jobs.append(tag(train_job(f"train/{strategy}/{seed_tag(seed)}", f"{strategy} seed {seed}",
                                          f"world/stage2_{strategy}", make, seed_run_dir(out, strategy, seed), samples,
                                          strategy, p), readers))
        for seed, key, eval_dir in model_evals(p, out)[strategy]:
            jobs.append(tag(eval_job(key, f"evaluate {strategy} seed {seed}",
                                     lambda ctx, s=strategy, sd=seed: model_run(ctx, s, sd), eval_dir, EVAL_TASKS,
                                     p.eval_limit, full_seconds, p), table1_readers(strategy, seed)))
            if p.grounding_limit:
                jobs.append(tag(grounding_job(strategy, seed, out, p), {"table1"}))

    # --- Fig. 2 / Table 3: LayerNorm on one data type at a time, the same steps, at LayerNorm's best lr
    for kind in SUBSET_TYPES:
        run_dir = out / "subsets" / kind
        readers = {"fig2", "table3"} if kind == "conversation" else {"fig2"}
        sized = [f"data.max_samples={p.subset_samples}"] if p.subset_samples else []
        make = lambda ctx, k=kind, sz=sized: [*stage2("layernorm")(ctx), f"data.path=${{world}}/instruct/{k}.json",
                                              *sz, f"train.lr={best_lr(ctx, 'layernorm')}"]
        jobs.append(tag(train_job(f"train/subset/{kind}", f"layernorm on {kind}", "world/stage2_layernorm", make,
                                  run_dir, subset_samples, "layernorm", p), readers))
        jobs.append(tag(eval_job(f"eval/subset-{kind}", f"evaluate layernorm on {kind}", lambda ctx, d=run_dir: d,
                                 out / "eval" / f"subset-{kind}", EVAL_TASKS, p.eval_limit, full_seconds, p), readers))

    # --- Table 4: connector only; norms only with the connector frozen (at LayerNorm's best lr)
    connector = out / "table4" / "connector"
    jobs.append(tag(train_job("train/table4/connector", "connector only", "world/stage2_connector",
                              stage2("connector", [*mix, f"train.lr={p.connector_lr}", "train.projector_lr=null"]), connector, samples,
                              "connector", p), {"table4"}))
    jobs.append(tag(eval_job("eval/table4-connector", "evaluate connector only", lambda ctx: connector,
                             out / "eval" / "table4-connector", EVAL_TASKS, p.eval_limit, full_seconds, p), {"table4"}))
    norms_only = out / "table4" / "layernorm-no-connector"
    jobs.append(tag(Job("train/table4/layernorm-no-connector", "norms only, connector frozen",
                        1.0 if p.norms_only_is_simple else
                        p.seconds_per_load + samples * p.seconds_per_sample * STEP_COST["layernorm-simple"],
                        lambda ctx: _trained(norms_only)(ctx) or (norms_only / "reused.json").is_file(),
                        lambda ctx: _norms_only(ctx, norms_only, stage2("layernorm",
                                                                        [*mix, "train.include_base=false"]))),
                    {"table4"}))
    if not p.norms_only_is_simple:  # otherwise its evaluation is layernorm-simple's (model_evals)
        jobs.append(tag(eval_job("eval/table4-layernorm", "evaluate norms only",
                                 lambda ctx: norms_only_run(ctx, norms_only), out / "eval" / "table4-layernorm",
                                 EVAL_TASKS, p.eval_limit, full_seconds, p), {"table4"}))

    # --- Table 5: the classification-pretrained tower: its own stage 1, then finetune and layernorm
    jobs.append(tag(tower_job("classification"), {"table5"}))
    jobs.append(tag(train_job("train/stage1-classification", "stage 1 on the classification tower", "world/stage1",
                              lambda ctx: [*ctx.common, "world.vision_objective=classification",
                                           *p.model_classification, *p.stage1],
                              stage1["classification"], stage1_samples, "stage1", p), {"table5"}))
    for strategy in ("finetune", "layernorm"):
        run_dir = out / "table5" / strategy
        make = lambda ctx, s=strategy: [*stage2(s, mix, tower="classification")(ctx), f"train.lr={best_lr(ctx, s)}"]
        jobs.append(tag(train_job(f"train/table5/{strategy}", f"{strategy} on the classification tower",
                                  f"world/stage2_{strategy}", make, run_dir, samples, strategy, p), {"table5"}))
        jobs.append(tag(eval_job(f"eval/table5-{strategy}", f"evaluate {strategy} (classification tower)",
                                 lambda ctx, d=run_dir: d, out / "eval" / f"table5-{strategy}", EVAL_TASKS,
                                 p.eval_limit, full_seconds, p), {"table5"}))

    # --- Table 2, Table 6 / Fig. 3, Fig. 4
    jobs.append(tag(Job("params", "parameter counts", 2 * p.seconds_per_load + 10,
                        _file(out / "analysis" / "params.json"), lambda ctx: _params(ctx)), {"table2"}))
    if p.bench_preset:
        jobs.append(tag(Job("bench", f"memory (lntune bench --preset {p.bench_preset})", p.bench_seconds,
                            _file(out / "analysis" / "bench.json"), lambda ctx: _bench(ctx)), {"bench", "table2"}))
    jobs.append(tag(Job("similarity", "layer similarity",
                        2 * len(p.seeds) * (p.seconds_per_load + p.similarity_samples * 0.1),
                        _file(out / "analysis" / "similarity.json"), lambda ctx: _similarity(ctx)), {"similarity"}))
    if p.track_layers:
        jobs.append(tag(Job("gradients", "gradient statistics", 2.0 * len(p.seeds),
                            _file(out / "analysis" / "gradients.json"), lambda ctx: _gradients(ctx)), {"gradients"}))
    return jobs


def grounding_job(strategy: str, seed: int, out: Path, p: ReproducePreset) -> Job:
    """A Table 1 model's shuffled-image control: its POPE yes-vs-no scores with true and with shuffled images."""
    from lntune.quickstart import grounding_control

    folder = grounding_dir(out, strategy, seed)

    def action(ctx):
        return grounding_control(model_run(ctx, strategy, seed), ctx.eval_root(), ctx.world() / "images", folder,
                                 limit=p.grounding_limit, batch_size=p.eval_batch_size, tasks=("pope",),
                                 progress=False)

    questions = 3 * min(p.grounding_limit, 6 * _world_preset(p.world).pope_images)
    return Job(f"grounding/{strategy}/{seed_tag(seed)}", f"shuffled-image control: {strategy} seed {seed}",
               p.seconds_per_load + questions * p.seconds_per_control_question,
               _file(folder / "grounding.json"), action)


def _world_preset(name: str):
    from lntune.world.presets import get_preset

    return get_preset(name)


def _stage1_samples(p: ReproducePreset) -> int:
    from lntune.world.presets import get_preset

    return _samples_seen(_override(p.stage1, "data.max_samples", get_preset(p.world).train_images), p.world, p.stage1)


# ------------------------------------------------------------------------------------------- actions

def _world_done(ctx: Context) -> bool:
    from lntune.world.cache import world_cache_dir

    return (world_cache_dir(ctx.preset.world, 0) / "world.json").is_file()


def _tower_done(ctx: Context, objective: str) -> bool:
    if ctx.preset.model:
        return True
    from lntune.world.cache import tower_cache_dir

    return _world_done(ctx) and (tower_cache_dir(ctx.world(), objective, 0) / "tower.json").is_file()


def _tower(ctx: Context, objective: str) -> str | None:
    if ctx.preset.model:  # explicit model directories (tests): no world tower needed
        return None
    from lntune.world.cache import ensure_vision_tower

    return str(ensure_vision_tower(ctx.world(), objective, 0, progress=False))


def _summarize_sweep(ctx: Context, strategy: str, extra: list[str]) -> dict:
    """The sweep's table and plot (lntune.sweep.sweep finds every run and evaluation already done)."""
    from lntune.pipeline import packaged_config
    from lntune.sweep import sweep

    p = ctx.preset
    base = ctx.out / "stage1"
    overrides = [*ctx.common, *p.stage2, f"model.base={base}", *extra]
    result = sweep(packaged_config(f"world/stage2_{strategy}"), list(p.grid(strategy)), ctx.out / "sweep" / strategy,
                   select_task=SELECT_TASK, overrides=overrides, data_root=ctx.eval_root(), limit=p.sweep_limit,
                   batch_size=p.eval_batch_size)
    return result


def best_lr(ctx: Context, strategy: str) -> float:
    """The strategy's learning rate: its only one, or the sweep's best."""
    if not ctx.preset.swept(strategy):
        return ctx.preset.grid(strategy)[0]
    return float(_sweep_result(ctx, strategy)["best"]["lr"])


def model_run(ctx: Context, strategy: str, seed: int | None = None) -> Path:
    """The run of a Table 1 strategy at `seed` (default: the first seed, the one the other experiments use)."""
    p = ctx.preset
    seed = p.seeds[0] if seed is None else seed
    if p.swept(strategy) and seed == p.seeds[0]:
        return Path(_sweep_result(ctx, strategy)["best"]["run"])
    return seed_run_dir(ctx.out, strategy, seed)


def _sweep_result(ctx: Context, strategy: str) -> dict:
    key = f"sweep/{strategy}"
    if key not in ctx.results:
        path = ctx.out / "sweep" / strategy / "sweep.json"
        if not path.is_file():
            raise LntuneError(f"{path}: the {strategy} sweep has not finished; run the reproduction again")
        ctx.results[key] = load_json(path, "sweep summary")
    return ctx.results[key]


def norms_only_run(ctx: Context, run_dir: Path) -> Path:
    """Table 4's norms-only model: its own run, or the layernorm-simple run when that is the same experiment."""
    marker = run_dir / "reused.json"
    return Path(load_json(marker, "reused-run record")["run"]) if marker.is_file() else run_dir


def _norms_only(ctx: Context, run_dir: Path, overrides) -> str:
    """Norms only with the connector frozen, at LayerNorm's best lr. layernorm with include_base=false trains
    exactly layernorm-simple's parameters, so when layernorm-simple's best lr is the same, that run is reused."""
    import json

    from lntune.pipeline import run_stage, stage_config

    lr = best_lr(ctx, "layernorm")
    if best_lr(ctx, "layernorm-simple") == lr and not _trained(run_dir)(ctx):
        run_dir.mkdir(parents=True, exist_ok=True)
        reused = str(model_run(ctx, "layernorm-simple"))
        (run_dir / "reused.json").write_text(json.dumps({"run": reused, "lr": lr, "why": (
            "layernorm with include_base=false trains the same parameters as layernorm-simple, on the same data "
            "at the same learning rate")}))
        return reused
    return str(run_stage(stage_config("world/stage2_layernorm", [*overrides(ctx), f"train.lr={lr}",
                                                                  f"output_dir={run_dir}"])))


def _params(ctx: Context) -> dict:
    """Trainable counts per strategy on the measured small model, and the 7B/13B presets (LoRA r=64, Table 2)."""
    import json

    from lntune.accounting import meta_model, preset_config, strategy_table
    from lntune.model.load import load_mllm
    from lntune.strategies import LoraOptions

    path = ctx.out / "analysis" / "params.json"
    if path.is_file():
        return load_json(path, "reproduction analysis")
    stage1 = ctx.out / "stage1"
    lora_r = _lora_r(ctx)
    small = strategy_table(lambda: load_mllm(stage1)[0], "measured", lora=LoraOptions(r=lora_r, alpha=2 * lora_r),
                           strategies=STRATEGIES)
    presets = {scale: strategy_table(lambda s=scale: meta_model(preset_config(f"llava-llama2-{s}")), scale,
                                     lora=LoraOptions(r=64, alpha=128), strategies=STRATEGIES)
               for scale in ("7b", "13b")} if ctx.preset.count_presets else {}
    predicted = {}
    if ctx.preset.count_presets:
        from lntune.memory_model import paper_table2_gb

        predicted = {scale: paper_table2_gb(f"llava-llama2-{scale}") for scale in ("7b", "13b")}
    result = {"measured": {**small, "lora_r": lora_r}, "presets": presets, "presets_lora_r": 64,
              "predicted_gb": predicted}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def _lora_r(ctx: Context) -> int:
    """The LoRA rank the stage-2 LoRA runs use (read without resolving the config's world paths)."""
    from lntune.config import load_config
    from lntune.pipeline import packaged_config

    return load_config(packaged_config("world/stage2_lora"), [o for o in ctx.preset.stage2 if o.startswith("train.lora")]).train.lora.r


def _bench(ctx: Context) -> dict:
    import json

    from lntune.bench.runner import public_json, run_bench

    path = ctx.out / "analysis" / "bench.json"
    if path.is_file():
        return load_json(path, "reproduction analysis")
    result = public_json(run_bench(ctx.preset.bench_preset, strategies=list(STRATEGIES), baselines=[], steps=2,
                                   warmup=1, rounds=1, feature_cache=False, progress=False,
                                   isolate=ctx.preset.bench_isolate, threads=ctx.threads))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def _similarity(ctx: Context) -> dict:
    """Layer similarity of finetune and layernorm at every seed; "models" holds the first seed's (the figure's)."""
    import json

    from lntune.analysis import layer_similarity, plot_similarity
    from lntune.model.load import load_mllm

    path = ctx.out / "analysis" / "similarity.json"
    if path.is_file():
        return load_json(path, "reproduction analysis")
    world = ctx.world()
    per_seed: dict[str, list] = {}
    for strategy in ("finetune", "layernorm"):
        for seed in ctx.preset.seeds:
            model, processor = load_mllm(model_run(ctx, strategy, seed))
            model.eval()
            per_seed.setdefault(strategy, []).append(layer_similarity(
                model, processor, world / "instruct" / "mixed.json", world / "images",
                samples=ctx.preset.similarity_samples, seed=0, batch_size=8))
            del model
    results = {strategy: runs[0] for strategy, runs in per_seed.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_similarity(results, path.parent / "similarity.png")
    result = {"models": results, "data": str(world / "instruct" / "mixed.json"),
              "samples": ctx.preset.similarity_samples, "seeds": list(ctx.preset.seeds),
              "per_seed": {s: [r["mean_offdiag"] for r in runs] for s, runs in per_seed.items()}}
    path.write_text(json.dumps(result))
    return result


def _gradients(ctx: Context) -> dict:
    """Norm-gradient ratios LayerNorm / finetune at every seed; "runs" and "ratios" are the first seed's."""
    import json

    from lntune.analysis import compare_summaries, gradient_summary, plot_gradients

    path = ctx.out / "analysis" / "gradients.json"
    if path.is_file():
        return load_json(path, "reproduction analysis")
    per_seed = []
    for seed in ctx.preset.seeds:
        summaries = {s: gradient_summary(model_run(ctx, s, seed)) for s in ("layernorm", "finetune")}
        per_seed.append({"seed": seed, "summaries": summaries,
                         "ratios": compare_summaries(summaries["layernorm"], summaries["finetune"])})
    result = {"runs": per_seed[0]["summaries"], "ratios": per_seed[0]["ratios"],
              "per_seed": [{"seed": r["seed"], "ratios": r["ratios"]} for r in per_seed]}
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_gradients({s: model_run(ctx, s) for s in ("layernorm", "finetune")}, path.parent / "gradients.png")
    path.write_text(json.dumps(result, indent=2))
    return result
