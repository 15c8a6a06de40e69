"""Run the reproduction plan: every job in order, one overall progress bar with ETA, resumable.

    from lntune.reproduce.runner import reproduce
    reproduce("world-quick", Path("runs/reproduce"))        # or a ReproducePreset object (the smoke test's)

Resuming: every job checks its own outputs on disk (a finished training run, a complete metrics.json, an
analysis JSON) and is skipped when done; a half-finished training run resumes from its last checkpoint and a
half-finished evaluation from its predictions file. So a killed reproduction is continued by running the same
command again. The progress bar counts planned seconds (each job's `cost_s`), starting from the jobs already
done, so its rate and ETA reflect the work left. DIR/jobs.json records per job the planned seconds, the measured
wall-clock seconds and the CPU seconds of this process (all its threads; on a machine shared with other work
the wall clock stretches, the CPU time much less).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lntune.jsonio import load_json
from lntune.locks import locked, write_text_atomic
from lntune.reproduce.experiments import Context, ReproducePreset, get_preset, plan

JOBS_FILE = "jobs.json"


@locked("out", "reproduction")
def reproduce(preset: str | ReproducePreset, out, progress: bool = True, report: bool = True,
              threads: int | None = None, report_only: bool = False) -> dict:
    """Run (or continue) the reproduction into `out`; returns {"preset", "jobs": {key: record}, "results"} and,
    with `report`, writes out/report.md, out/results.json and the figures. `threads` sets torch's thread count
    (also for the bench workers): on a machine shared with other work, 1 thread avoids OpenMP threads waiting
    on each other and is several times faster for small models. `report_only` runs nothing new: it reads the
    finished jobs back and writes the report from them (claims without results say "untestable")."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    if threads:
        import torch

        torch.set_num_threads(threads)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(preset=p, out=out, threads=threads)
    jobs = plan(p, out)
    records = _read_records(out)
    done_before = {job.key for job in jobs if job.done(ctx)}
    if report_only:
        return _report_from_finished(ctx, [job for job in jobs if job.key in done_before], records, report)
    planned = sum(job.cost_s for job in jobs)
    print(f"lntune reproduce: preset {p.name}, {len(jobs)} jobs, planned {planned / 60:.0f} min on an idle 2-core CPU "
          f"in float32; "
          f"{len(done_before)} already done", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=planned, initial=sum(j.cost_s for j in jobs if j.key in done_before),
               unit="s", unit_scale=False, desc="reproduce", disable=not progress, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} planned s [{elapsed}<{remaining}, {rate_fmt}] {postfix}")
    try:
        for job in jobs:
            bar.set_postfix_str(job.label)
            started, cpu_started = time.perf_counter(), time.process_time()
            ctx.results[job.key] = job.action(ctx)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            record = records.setdefault(job.key, {})
            record.update(label=job.label, planned_s=round(job.cost_s, 1))
            if job.key not in done_before:
                record.update(measured_s=round(seconds, 1), cpu_s=round(cpu_seconds, 1), ended=round(time.time(), 3))
                bar.update(job.cost_s)
            _write_records(out, records)
    finally:
        bar.close()
    outcome = {"preset": p.name, "jobs": records, "planned_s": round(planned, 1), "results": ctx.results}
    if report:
        from lntune.reproduce.report import write_report

        write_report(ctx, records)
    return outcome


def plan_text(p: ReproducePreset, out) -> str:
    """The planned jobs (those not already done in `out` marked) and their planned minutes on an idle 2-core CPU."""
    out = Path(out).resolve()
    ctx = Context(preset=p, out=out)
    jobs = plan(p, out)
    lines = [f"lntune reproduce --preset {p.name}: {len(jobs)} jobs; experiments: {', '.join(p.only)}; "
             f"Table 1: {', '.join(p.strategies)} x seeds {', '.join(map(str, p.seeds))}"]
    left = 0.0
    for job in jobs:
        done = out.is_dir() and _done_quietly(job, ctx)
        left += 0 if done else job.cost_s
        lines.append(f"  {job.cost_s / 60:6.1f} min  {'done ' if done else ''}{job.label}")
    total = sum(job.cost_s for job in jobs)
    lines.append(f"planned: {total / 60:.0f} min on an idle 2-core x86 CPU in float32 ({left / 60:.0f} min left)")
    return "\n".join(lines)


def _done_quietly(job, ctx) -> bool:
    from lntune.errors import LntuneError

    try:
        return job.done(ctx)
    except LntuneError:
        return False


def _report_from_finished(ctx: Context, finished, records: dict, report: bool) -> dict:
    from lntune.errors import LntuneError

    for job in finished:
        try:
            ctx.results[job.key] = job.action(ctx)  # finished: reads the outputs back
        except LntuneError as err:  # e.g. a finished run whose sweep summary is not written yet
            print(f"lntune reproduce: {job.key}: not read back ({err})", file=sys.stderr)
    if report:
        from lntune.reproduce.report import write_report

        write_report(ctx, records)
    return {"preset": ctx.preset.name, "jobs": records, "results": ctx.results}


def _read_records(out: Path) -> dict:
    path = out / JOBS_FILE
    return load_json(path, "reproduction job records") if path.is_file() else {}


def _write_records(out: Path, records: dict) -> None:
    write_text_atomic(out / JOBS_FILE, json.dumps(records, indent=2))
