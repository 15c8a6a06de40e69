"""The reproduction plans of the packaged presets (no runs): seeds, learning rates, evaluation sizes and the
planned budget. Run: pytest tests/test_reproduce_plan.py"""

from pathlib import Path

from lntune.reproduce.experiments import get_preset, plan
from lntune.strategies import PAPER_STRATEGIES as STRATEGIES
from lntune.sweep import PAPER_GRID


def test_world_quick_sweeps_three_paper_rates_per_strategy_then_trains_three_seeds():
    p = get_preset("world-quick")
    jobs = plan(p, Path("runs/reproduce"))
    keys = [job.key for job in jobs]
    assert p.seeds == (0, 1, 2)
    for strategy in STRATEGIES:
        assert len(p.grid(strategy)) == 3 and set(p.grid(strategy)) <= set(PAPER_GRID)
        assert sum(key.startswith(f"train/sweep/{strategy}/") for key in keys) == 3
        assert f"train/{strategy}/seed-0" not in keys  # seed 0 is the sweep's best run
        for seed in p.seeds:
            assert f"eval/{strategy}/seed-{seed}" in keys and f"grounding/{strategy}/seed-{seed}" in keys
        assert p.default_lrs[strategy] in p.grid(strategy)
    assert sum(key.startswith("train/") and "/seed-" in key for key in keys) == 2 * 6
    # questions per final evaluation: MME 4 subtasks x 80, VQAv2 100, 32 images per caption set, POPE 3 x 100
    assert p.eval_questions(p.eval_limit) == {"mme": 320, "vqav2": 100, "coco": 32, "flickr30k": 32, "pope": 300}
    # 30 stage-2 runs long enough for LayerNorm to pass its yes/no jump, and 26 evaluations of models that answer in
    # sentences: about 5 h planned in float32
    assert 240 <= sum(job.cost_s for job in jobs) / 60 <= 360


def test_only_strategies_seeds_and_no_sweep_narrow_the_plan():
    import pytest

    from lntune.errors import LntuneError
    from lntune.reproduce.experiments import restricted

    p = restricted(get_preset("world-quick"), only=["table1"], strategies=["layernorm"], seeds=[0], no_sweep=True)
    keys = [job.key for job in plan(p, Path("runs/x"))]
    assert keys == ["world", "tower/contrastive", "train/stage1", "train/layernorm/seed-0", "eval/layernorm/seed-0",
                    "grounding/layernorm/seed-0"]
    # without --only, experiments that read a strategy left out are dropped; named with --only, refused
    p = restricted(get_preset("world-quick"), strategies=["layernorm"], no_sweep=True)
    assert "table3" not in p.only and "similarity" not in p.only and "fig2" in p.only and "table2" in p.only
    with pytest.raises(LntuneError, match="table3 .needs finetune"):
        restricted(get_preset("world-quick"), only=["table3"], strategies=["layernorm"])
    with pytest.raises(LntuneError, match="unknown experiment tabel1"):
        restricted(get_preset("world-quick"), only=["tabel1"])
    # a sweep is planned where a swept strategy's learning rate is read
    p = restricted(get_preset("world-quick"), only=["fig2"])
    keys = [job.key for job in plan(p, Path("runs/x"))]
    assert "sweep/layernorm" in keys and "train/subset/conversation" in keys and "sweep/lora" not in keys
    assert not [k for k in keys if k.startswith(("eval/lora", "grounding/"))]


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
