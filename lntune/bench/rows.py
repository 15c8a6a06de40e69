"""The rows `lntune bench` can run, by implementation name: each takes a job dict and returns a row dict.

    lntune   the training step of `lntune train` (lntune/bench/lntune_row.py)
    hf-peft  Hugging Face `Trainer` + peft, what a user would do instead (lntune/bench/hf_peft_row.py)

    from lntune.bench.rows import run_row
    row = run_row({"impl": "lntune", "recipe": recipe, "strategy": "layernorm", "variant": "", "warmup": 1, "steps": 2})
"""

from __future__ import annotations

from typing import Callable

from lntune.errors import LntuneError


def _lntune(job: dict) -> dict:
    from lntune.bench.lntune_row import run_lntune_row

    return run_lntune_row(job)


def _hf_peft(job: dict) -> dict:
    from lntune.bench.hf_peft_row import run_hf_row

    return run_hf_row(job)


ROWS: dict[str, Callable[[dict], dict]] = {"lntune": _lntune, "hf-peft": _hf_peft}


def run_row(job: dict) -> dict:
    if job["impl"] not in ROWS:
        raise LntuneError(f"unknown bench implementation {job['impl']!r}; choose one of: {', '.join(ROWS)}")
    return ROWS[job["impl"]](job)
