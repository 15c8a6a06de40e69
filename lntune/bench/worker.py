"""One row of `lntune bench`, run in its own process so that its peak memory is its own.

    python -m lntune.bench.worker JOB.json ROW.json

JOB holds the preset's recipe, the implementation (a name of lntune/bench/rows.py), the strategy, the
variant and how many warm-up and timed steps to run. After the row, the worker measures the matmul rate in
the same process (same threads, same moment).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

from lntune.bench.matmul import matmul_gflops
from lntune.bench.rows import run_row


def run_job(job: dict) -> dict:
    """Run one row, then measure the matmul rate in the same process and moment (same threads, same load)."""
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    try:
        row = run_row(job)
    except torch.OutOfMemoryError as err:  # Table 2's "OOM": a result, not a failure of the bench
        return {"impl": job["impl"], "strategy": job["strategy"], "variant": job.get("variant", ""), "oom": True,
                "error": str(err).splitlines()[0]}
    recipe = job["recipe"]
    dtype = "bfloat16" if recipe["mixed_precision"] == "bf16" and recipe["device"] == "cuda" else recipe["dtype"]
    tokens = int(statistics.median(c["tokens"] for c in row["steps"]))
    row["matmul"] = matmul_gflops(row["hidden_size"], row["intermediate_size"], tokens, dtype, recipe["device"])
    return row


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    row = run_job(job)
    Path(argv[1]).write_text(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
