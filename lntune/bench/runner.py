"""`lntune bench`: step time, tokens/s, peak memory, trainable parameters and FLOP floor per strategy.

    lntune bench                                   # embedded default on CPU, lntune vs HF Trainer + peft
    lntune bench --strategies layernorm,layernorm-simple --baselines none --json
    lntune bench --preset llava-llama2-7b --random-init       # Table 2's memory column, CUDA only

Every row (an implementation x a strategy) runs in its own process (lntune/bench/worker.py), so
its peak memory is its own. The rows take turns over `rounds` rounds (the second in reverse order), so a
neighbour's load on a shared machine spreads over all of them, and each row's timed steps of all rounds
are pooled: median step time, tokens/s = tokens / seconds, the largest peak. Every worker also measures
the matmul rate right after its steps; the run's rate is the median of those. A row's "matmul fraction"
is its FLOP floor per second (lntune/bench/flops.py) over that rate. The result also holds ratios
between rows (`row_ratios`); what they are compared with is docs/benchmarks.md's business.

    from lntune.bench.runner import run_bench, format_table
    result = run_bench("tiny", strategies=["layernorm"], baselines=[], feature_cache=False, steps=2, warmup=1, rounds=1)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lntune.errors import LntuneError
from lntune.strategies import PAPER_STRATEGIES

DEFAULT_STRATEGIES = ("finetune", "lora", "layernorm", "layernorm-simple")
DEFAULT_BASELINES = ("layernorm", "lora")
TABLE2_STRATEGIES = PAPER_STRATEGIES  # the paper's rows


def default_strategies(preset: str) -> tuple:
    """The paper-size presets measure every Table 2 row; the others the four the ratios compare."""
    from lntune.bench.presets import PAPER_PRESETS

    return TABLE2_STRATEGIES if preset in PAPER_PRESETS else DEFAULT_STRATEGIES
# Extra lntune rows of layernorm-simple: "feature-cache" (vision features computed once, a saving of sweeps and
# multi-epoch runs), "compile" (SupervisedLoss(compile_layers=True), opt-in).
VARIANTS = ("feature-cache", "compile")
DEFAULT_VARIANTS = ("feature-cache",)  # the compile row pays a one-time compile (about 100 s here) on a first run
VARIANT_STRATEGY = "layernorm-simple"


def plan_jobs(recipe: dict, strategies, baselines, variants, steps: int, warmup: int, threads: int | None,
              tensor_memory: bool = False) -> list[dict]:
    """One job per row: lntune x strategies, hf-peft x baselines, then the variant rows (of layernorm-simple)."""
    from lntune.strategies import STRATEGIES

    for name in list(strategies) + list(baselines):
        if name not in STRATEGIES:
            raise LntuneError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}")
    from lntune.bench.hf_peft_row import BASELINE_STRATEGIES

    unsupported = [b for b in baselines if b not in BASELINE_STRATEGIES]
    if unsupported:
        raise LntuneError(f"--baselines {unsupported[0]}: no HF Trainer + peft baseline for it; "
                          f"baselines exist for {', '.join(BASELINE_STRATEGIES)}")
    common = {"recipe": recipe, "steps": steps, "warmup": warmup, "threads": threads}
    jobs = [{**common, "impl": "lntune", "strategy": s, "variant": "", "tensor_memory": tensor_memory} for s in strategies]
    jobs += [{**common, "impl": "hf-peft", "strategy": s, "variant": ""} for s in baselines]
    for variant in variants:
        if variant not in VARIANTS:
            raise LntuneError(f"unknown bench variant {variant!r}; variants: {', '.join(VARIANTS)}")
        jobs.append({**common, "impl": "lntune", "strategy": VARIANT_STRATEGY, "variant": variant})
    return jobs


def row_key(row: dict) -> tuple:
    return row["impl"], row["strategy"], row.get("variant", "")


def run_bench(preset: str = "embedded", strategies=None, baselines=DEFAULT_BASELINES,
              steps: int = 2, warmup: int = 1, rounds: int = 2, feature_cache: bool = True, compile_variant: bool = False,
              random_init: bool = False, tensor_memory: bool = False,
              batch_size: int | None = None, threads: int | None = None, workdir=None, timeout_s: float = 1800,
              progress: bool = True, isolate: bool = True) -> dict:
    """Run every row in its own process and return the result dict (see `lntune bench --json`).
    `feature_cache` / `compile_variant` add the layernorm-simple rows "feature-cache" / "compile".
    `strategies=None` takes `default_strategies(preset)`. A row that runs out of GPU memory is reported as
    {"oom": true} (Table 2's "OOM") instead of stopping the run.
    `isolate=False` runs the rows in this process instead (quick checks; peak memories then overlap).
    `tensor_memory` adds one untimed step per lntune row under the memory profiler: its tensor peak beside
    lntune/memory_model.py's prediction (lntune/bench/tensor_memory.py)."""
    from lntune.bench.presets import recipe as make_recipe
    from lntune.paths import lntune_home

    if steps < 1 or warmup < 0 or rounds < 1:
        raise LntuneError(f"--steps must be >= 1, --warmup >= 0 and --rounds >= 1 (got {steps}, {warmup}, {rounds})")
    started = time.perf_counter()
    load_before = _load()
    recipe = make_recipe(preset, workdir or lntune_home() / "bench", random_init=random_init, batch_size=batch_size)
    variants = [v for v, wanted in zip(VARIANTS, (feature_cache, compile_variant)) if wanted]
    strategies = default_strategies(preset) if strategies is None else strategies
    threads, threads_note = choose_threads(threads, recipe["device"], load_before)
    jobs = plan_jobs(recipe, list(strategies), list(baselines), variants, steps, warmup, threads, tensor_memory)
    order = [job for r in range(rounds) for job in (jobs if r % 2 == 0 else jobs[::-1])]
    per_row: dict[tuple, list[dict]] = {}
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="lntune-bench-") as tmp, \
            tqdm(total=len(order), desc="bench", unit="row", disable=not progress, dynamic_ncols=True) as bar:
        for i, job in enumerate(order):
            bar.set_postfix_str(f"{job['impl']} {job['strategy']} {job['variant']}".strip())
            row = _run_worker(job, Path(tmp) / f"job{i}", timeout_s) if isolate else _run_here(job)
            per_row.setdefault(row_key(row), []).append(row)
            bar.update(1)
    rows = [merge_rounds(per_row[key]) for key in dict.fromkeys(row_key(j) for j in jobs)]
    probes = [r["matmul"] for runs in per_row.values() for r in runs if "matmul" in r]
    if not probes:
        raise LntuneError("every bench row ran out of memory: try a smaller --batch-size")
    matmul = statistics.median(p["gflops"] for p in probes)
    matmul_cpu = statistics.median(p["gflops_cpu"] for p in probes)
    for row in rows:
        if not row.get("oom"):
            row["matmul_fraction"] = row["floor_gflops"] / matmul
            row["cpu_matmul_fraction"] = row["floor_gflops_cpu"] / matmul_cpu
    device = recipe["device"]
    return {
        "preset": preset, "random_init": random_init, "device": device,
        "settings": {"batch_size": recipe["batch_size"], "steps": steps, "warmup": warmup, "rounds": rounds,
                     "threads": threads or probes[0]["threads"], "threads_note": threads_note, "dtype": recipe["dtype"],
                     "mixed_precision": recipe["mixed_precision"], "gradient_checkpointing": recipe["gradient_checkpointing"],
                     "lora": recipe["lora"], "vision": recipe.get("vision_note", "")},
        "machine": machine_info(device, load_before),
        "matmul_gflops": matmul, "matmul_gflops_cpu": matmul_cpu,
        "flop_floor": {row["strategy"]: row["flop_floor"] for row in rows
                       if row["impl"] == "lntune" and not row["variant"] and not row.get("oom")},
        "ratios": row_ratios(rows),
        "ratios_cpu_clock": row_ratios(rows, clock="cpu"),
        "rows": rows,
        "elapsed_s": time.perf_counter() - started,
    }


def choose_threads(threads: int | None, device: str, load) -> tuple[int | None, str]:
    """(torch threads per row, why). None = torch's default. On a CPU already busier than its core count, OpenMP
    threads wait on each other at every operation (a step took 4x longer with 2 threads than with 1 at load 8
    on 2 cores), so rows run single-threaded there unless --threads says otherwise."""
    if threads:
        return threads, "--threads"
    cores = os.cpu_count() or 1
    if device == "cpu" and load and cores > 1 and load[0] >= cores:
        return 1, f"load average {load[0]} >= {cores} cores: 1 thread per row"
    return None, "torch's default"


def _run_worker(job: dict, base: Path, timeout_s: float) -> dict:
    base.mkdir(parents=True)
    job_file, row_file, log_file = base / "job.json", base / "row.json", base / "worker.log"
    job_file.write_text(json.dumps(job))
    env = dict(os.environ)
    if job.get("threads"):
        env["OMP_NUM_THREADS"] = str(job["threads"])
    name = f"{job['impl']} {job['strategy']} {job['variant']}".strip()
    with log_file.open("w") as log:
        try:
            done = subprocess.run([sys.executable, "-m", "lntune.bench.worker", str(job_file), str(row_file)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise LntuneError(f"bench row '{name}' took longer than {timeout_s:.0f} s") from None
    if done.returncode != 0 or not row_file.is_file():
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        raise LntuneError(f"bench row '{name}' failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}")
    return json.loads(row_file.read_text())


def _run_here(job: dict) -> dict:
    from lntune.bench.worker import run_job

    return json.loads(json.dumps(run_job(job)))  # the same types a worker's JSON file gives


def merge_rounds(runs: list[dict]) -> dict:
    """One row from the same row's rounds: timed steps pooled, the largest peak memory."""
    first = runs[0]
    if any(r.get("oom") for r in runs):
        keys = ("impl", "strategy", "step_time_s", "tokens_per_s", "peak_mem_mb", "trainable")
        return {**{k: None for k in keys}, **{k: first[k] for k in ("impl", "strategy", "trainable") if k in first},
                "variant": first.get("variant", ""), "oom": True,
                "error": next(r["error"] for r in runs if r.get("oom"))}
    times = [t for r in runs for t in r["step_times_s"]]
    cpu_times = [t for r in runs for t in r["cpu_step_times_s"]]
    steps = [s for r in runs for s in r["steps"]]
    seconds = sum(times)
    floors = [r["flop_floor"] * len(r["step_times_s"]) for r in runs]
    return {
        "impl": first["impl"], "strategy": first["strategy"], "variant": first.get("variant", ""),
        "step_time_s": statistics.median(times), "tokens_per_s": sum(s["tokens"] for s in steps) / seconds,
        "peak_mem_mb": max(r["peak_mem_mb"] for r in runs), "trainable": first["trainable"], "total": first["total"],
        "flop_floor": sum(floors) / len(times), "floor_gflops": sum(floors) / seconds / 1e9,
        "cpu_step_time_s": statistics.median(cpu_times), "tokens_per_cpu_s": sum(s["tokens"] for s in steps) / sum(cpu_times),
        "floor_gflops_cpu": sum(floors) / sum(cpu_times) / 1e9,
        "step_times_s": times, "cpu_step_times_s": cpu_times, "steps": steps,
        "peak_mem_by_round": [r["peak_mem_mb"] for r in runs], "peak_mem_scope": first["peak_mem_scope"],
        "matmul_gflops_by_round": [r["matmul"]["gflops"] for r in runs], "build_s": statistics.median(r["build_s"] for r in runs),
        "threads": first["threads"], "weights": first["weights"],
        **({"tensor_memory": [r["tensor_memory"] for r in runs]} if "tensor_memory" in first else {}),
    }


def _find(rows, impl, strategy, variant=""):
    """The measured row, or None (absent, or out of memory)."""
    return next((r for r in rows if row_key(r) == (impl, strategy, variant) and not r.get("oom")), None)


RATIOS = {  # name: (numerator row, denominator row, what is compared); rows are (impl, strategy)
    "layernorm_simple_step_time_vs_finetune": (("lntune", "layernorm-simple"), ("lntune", "finetune"), "step"),
    "layernorm_simple_peak_mem_vs_lora": (("lntune", "layernorm-simple"), ("lntune", "lora"), "peak_mem_mb"),
    "layernorm_tokens_per_s_vs_hf_peft": (("lntune", "layernorm"), ("hf-peft", "layernorm"), "rate"),
    "layernorm_peak_mem_vs_hf_peft": (("lntune", "layernorm"), ("hf-peft", "layernorm"), "peak_mem_mb"),
}


def row_ratios(rows: list[dict], clock: str = "wall") -> dict:
    """{name: ratio or None (a row it needs is missing)} of RATIOS, plus layernorm-simple's matmul fraction.
    `clock="cpu"` times the steps by the CPU time of their process (what a busy shared machine distorts least)."""
    keys = ({"step": "cpu_step_time_s", "rate": "tokens_per_cpu_s", "fraction": "cpu_matmul_fraction"} if clock == "cpu"
            else {"step": "step_time_s", "rate": "tokens_per_s", "fraction": "matmul_fraction"})
    result = {}
    for name, (top, bottom, what) in RATIOS.items():
        a, b = _find(rows, *top), _find(rows, *bottom)
        key = keys.get(what, what)
        result[name] = a[key] / b[key] if a and b else None
    simple = _find(rows, "lntune", "layernorm-simple")
    result["layernorm_simple_matmul_fraction"] = simple.get(keys["fraction"]) if simple else None
    return result


def machine_info(device: str, load_before) -> dict:
    import torch

    info = {"cpu": _cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "load_avg_before": load_before, "load_avg_after": _load()}
    try:
        import peft
        import transformers

        info.update(transformers=transformers.__version__, peft=peft.__version__)
    except ImportError:
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def format_table(result: dict) -> str:
    s = result["settings"]
    m = result["machine"]
    lines = [f"lntune bench --preset {result['preset']}: batch {s['batch_size']}, {s['steps']} timed steps after "
             f"{s['warmup']} warm-up x {s['rounds']} rounds, {s['threads']} threads"
             f"{' (' + s['threads_note'] + ')' if s.get('threads_note') else ''}, {result['device']}",
             f"machine: {m.get('gpu') or m['cpu']} ({m['cores']} cores), load avg {m['load_avg_before']} -> {m['load_avg_after']}; "
             f"matmul rate {result['matmul_gflops']:.1f} GFLOP/s", "",
             f"{'impl':<8}{'strategy':<18}{'variant':<15}{'step s':>8}{'cpu s':>8}{'tok/s':>9}{'peak MB':>9}{'trainable':>13}"
             f"{'floor GF':>10}{'matmul %':>9}"]
    for r in result["rows"]:
        if r.get("oom"):
            lines.append(f"{r['impl']:<8}{r['strategy']:<18}{r['variant'] or '-':<15}{'out of memory':>34}")
            continue
        lines.append(f"{r['impl']:<8}{r['strategy']:<18}{r['variant'] or '-':<15}{r['step_time_s']:>8.3f}{r['cpu_step_time_s']:>8.3f}"
                     f"{r['tokens_per_s']:>9.0f}{r['peak_mem_mb']:>9.0f}{r['trainable']:>13,}"
                     f"{r['flop_floor'] / 1e9:>10.1f}{100 * r['matmul_fraction']:>8.0f}%")
    lines += _tensor_memory_lines(result["rows"])
    lines += ["", f"{'ratios':<44}{'wall clock':>12}{'CPU time':>12}"]
    for name, value in result["ratios"].items():
        cells = [_number(value), _number(result["ratios_cpu_clock"][name])]
        lines.append(f"  {name:<42}{cells[0]:>12}{cells[1]:>12}")
    return "\n".join(lines)


def _tensor_memory_lines(rows: list[dict]) -> list[str]:
    """Per profiled step: measured tensor peak, lntune/memory_model.py's prediction, their ratio."""
    lines = []
    for r in rows:
        for m in r.get("tensor_memory", []):
            if not lines:
                lines = ["", f"{'tensor memory of one step':<34}{'batch':>10}{'measured MB':>13}{'predicted MB':>14}{'pred/meas':>11}"]
            lines.append(f"  {r['impl'] + ' ' + r['strategy']:<32}{m['setup']['batch_size']:>5} x{m['setup']['seq_len']:>4}"
                         f"{m['peak_bytes'] / 2**20:>13.0f}{m['predicted_bytes'] / 2**20:>14.0f}"
                         f"{m['predicted_bytes'] / m['peak_bytes']:>11.3f}")
    return lines


def _number(value) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def plot_chart(result: dict, out_png) -> Path:
    """Two panels: median step time and peak memory per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if not r.get("oom")]
    labels = [f"{r['impl']}\n{r['strategy']}" + (f"\n{r['variant']}" if r["variant"] else "") for r in rows]
    colors = ["#3b75af" if r["impl"] == "lntune" else "#e0823d" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(rows) * 2), 4.2))
    for ax, key, title in ((axes[0], "step_time_s", "median step time (s)"), (axes[1], "peak_mem_mb", "peak memory (MB)")):
        ax.bar(range(len(rows)), [r[key] for r in rows], color=colors)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    m = result["machine"]
    fig.suptitle(f"lntune bench --preset {result['preset']} ({m.get('gpu') or m['cpu']}, batch "
                 f"{result['settings']['batch_size']}; blue: lntune, orange: HF Trainer + peft)", fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def public_json(result: dict) -> dict:
    """The `--json` document: rows with the issue's keys first, details after."""
    keys = ("impl", "strategy", "step_time_s", "tokens_per_s", "peak_mem_mb", "trainable")
    rows = [{**{k: r.get(k) for k in keys}, **{k: v for k, v in r.items() if k not in keys}} for r in result["rows"]]
    return {**result, "rows": rows}
