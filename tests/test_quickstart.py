"""The main job end to end on the embedded default (smoke preset), and the learning-rate sweep on tiny models."""

import json

import pytest

from lntune.cli import main
from lntune.pipeline import EVAL_TASKS
from tiny_models import make_tiny_run_inputs

pytestmark = pytest.mark.slow


def test_quickstart_smoke_end_to_end(tmp_path):
    out = tmp_path / "qs"
    assert main(["quickstart", "--preset", "smoke", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == ["stage-1 (connector only)", "LayerNorm"]
    for metrics in results["models"].values():
        assert set(metrics) == set(EVAL_TASKS)
        assert 0 <= metrics["pope"]["mean_accuracy"] <= 100
    report = (out / "report.md").read_text()
    assert report.startswith("# lntune quickstart (smoke)")
    assert set(results["comparison"]) == set(EVAL_TASKS)  # the paired LayerNorm - stage-1 difference per task
    assert "| LayerNorm − stage-1 |" in report
    # the shuffled-image control of the LayerNorm model, on the same questions as its evaluation
    control = results["grounding"]
    assert control["model"] == "LayerNorm" and control["groups"]["pope/random"]["true"]["n"] == 4
    assert "| LayerNorm, shuffled images |" in report and (out / "grounding" / "grounding.png").stat().st_size > 0
    assert (out / "results.png").stat().st_size > 0
    assert (out / "stage2-layernorm" / "lntune.json").exists()
    stage2 = json.loads((out / "stage2-layernorm" / "lntune.json").read_text())
    from lntune.fingerprint import model_fingerprint

    assert stage2["base"] == {"kind": "run", "path": {"absolute": str((out / "stage1").resolve()), "relative": "../stage1"},
                              "weights": model_fingerprint(out / "stage1")}  # a replaced stage 1 is refused on load
    train_settings = json.loads((out / "stage2-layernorm" / "run_config.json").read_text())["train"]
    assert (train_settings["lr"], train_settings["projector_lr"]) == (2.0e-3, 2.0e-4)
    # a second run finds everything done and only rewrites the report
    assert main(["quickstart", "--preset", "smoke", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["models"] == results["models"]


def test_sweep_trains_and_evaluates_each_learning_rate(tmp_path):
    import yaml

    from lntune.world.cache import ensure_world

    world = ensure_world("smoke", 0)
    config = make_tiny_run_inputs(tmp_path / "inputs")
    config["train"].update(max_steps=2)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "sweep"
    args = ["sweep", "--config", str(path), "--lrs", "1e-2,1e-4", "--select-task", "pope", "--limit", "2",
            "--data-root", str(world / "eval"), "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "sweep.json").read_text())
    assert [r["lr"] for r in result["rows"]] == [1e-2, 1e-4]
    assert result["best"]["metric"] == max(r["metric"] for r in result["rows"])
    assert (out / "sweep.png").exists() and (out / "lr-1e-2" / "trainable.safetensors").exists()
