"""The reproduction plans of the packaged presets (no runs): seeds, learning rates, evaluation sizes and the
planned budget. Run: pytest tests/test_reproduce_plan.py"""

from pathlib import Path

from lntune.reproduce.experiments import get_preset, plan
from lntune.strategies import PAPER_STRATEGIES as STRATEGIES
from lntune.sweep import PAPER_GRID


def test_world_quick_trains_every_strategy_with_three_seeds_and_no_sweep():
    p = get_preset("world-quick")
    jobs = plan(p, Path("runs/reproduce"))
    keys = [job.key for job in jobs]
    assert p.seeds == (0, 1, 2)
    for strategy in STRATEGIES:
        assert len(p.grid(strategy)) == 1 and p.grid(strategy)[0] in PAPER_GRID
        for seed in p.seeds:
            assert f"train/{strategy}/seed-{seed}" in keys and f"eval/{strategy}/seed-{seed}" in keys
    assert sum(key.startswith("train/") and "/seed-" in key for key in keys) == 3 * 6
    assert not [key for key in keys if key.startswith(("sweep/", "eval-sweep/", "train/sweep/"))]
    # questions per final evaluation: MME 4 subtasks x 80, VQAv2 100, 32 images per caption set, POPE 3 x 100
    assert p.eval_questions(p.eval_limit) == {"mme": 320, "vqav2": 100, "coco": 32, "flickr30k": 32, "pope": 300}
    assert sum(job.cost_s for job in jobs) / 60 <= 50  # about 43 min planned: under the hour with room to spare


def test_world_full_sweeps_the_papers_grid_at_the_first_seed():
    p = get_preset("world-full")
    keys = [job.key for job in plan(p, Path("runs/reproduce"))]
    for strategy in STRATEGIES:
        assert sum(key.startswith(f"train/sweep/{strategy}/") for key in keys) == len(PAPER_GRID) == 11
        assert f"sweep/{strategy}" in keys and f"train/{strategy}/seed-0" not in keys  # seed 0 is the sweep's best
        assert [f"eval/{strategy}/seed-{s}" in keys for s in p.seeds] == [True] * len(p.seeds)
        assert [f"train/{strategy}/seed-{s}" in keys for s in p.seeds[1:]] == [True] * (len(p.seeds) - 1)


def test_learning_rates_of_a_preset():
    import pytest

    from lntune.errors import LntuneError
    from lntune.reproduce.experiments import strategy_lrs

    assert strategy_lrs([2e-3, 1e-4]) == {s: (2e-3, 1e-4) for s in STRATEGIES}
    assert strategy_lrs({s: 1e-3 for s in STRATEGIES})["lora"] == (1e-3,)
    with pytest.raises(LntuneError, match="reproduce preset x: lrs has no learning rate for lora"):
        strategy_lrs({s: 1e-3 for s in STRATEGIES if s != "lora"}, "x")
