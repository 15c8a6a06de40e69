"""Runs that move: a stage-2 run and its stage-1 base moved to another folder, and the cache ($LNTUNE_HOME)
moved too, still load with the same weights, evaluate, export and chat; a missing reference is a clear error."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import write_tiny_benchmarks  # noqa: E402
from tiny_models import COLORS, make_tiny_run_inputs  # noqa: E402

from lntune.cli import main  # noqa: E402
from lntune.config import load_config  # noqa: E402
from lntune.errors import LntuneError  # noqa: E402
from lntune.model import load_mllm  # noqa: E402
from lntune.train.loop import train  # noqa: E402


def _logits(run, image):
    model, processor = load_mllm(run)
    batch = processor(text="<image>\nwhat color", images=image, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _train(inputs, out, **model):
    data = json.loads(json.dumps(inputs))
    data["output_dir"] = str(out)
    data["model"].update(model)
    data["train"].update(max_steps=1, strategy="connector" if "vision" in model else "layernorm")
    return train(load_config(data=data))


def test_moved_runs_and_cache_still_load_evaluate_export_and_chat(tmp_path, monkeypatch, capsys):
    inputs = make_tiny_run_inputs(tmp_path / "inputs", samples=8)
    home = tmp_path / "home"
    monkeypatch.setenv("LNTUNE_HOME", str(home))
    tower = home / "towers" / "tiny-tower"
    shutil.copytree(inputs["model"]["vision"], tower)
    stage1 = _train(inputs, tmp_path / "runs" / "stage1", vision=str(tower))
    stage2 = _train(inputs, tmp_path / "runs" / "stage2", base=str(stage1))
    meta1, meta2 = (json.loads((r / "lntune.json").read_text()) for r in (stage1, stage2))
    assert meta1["base"]["vision"] == {"home": "towers/tiny-tower"}
    assert meta2["base"]["path"]["relative"] == "../stage1"

    image = Image.new("RGB", (32, 32), COLORS["blue"])
    before = _logits(stage2, image)
    shutil.move(tmp_path / "runs", tmp_path / "elsewhere")
    shutil.move(home, tmp_path / "home2")
    monkeypatch.setenv("LNTUNE_HOME", str(tmp_path / "home2"))
    moved = tmp_path / "elsewhere" / "stage2"
    assert torch.equal(_logits(moved, image), before)

    data, images = write_tiny_benchmarks(tmp_path / "bench")
    assert main(["eval", "--model", str(moved), "--tasks", "pope", "--data-root", str(data), "--image-root",
                 str(images), "--limit", "1", "--max-new-tokens", "2", "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert main(["export", "--model", str(moved), "--out", str(tmp_path / "hf")]) == 0
    image.save(tmp_path / "blue.png")
    assert main(["chat", "--model", str(moved), "--image", str(tmp_path / "blue.png"), "--max-new-tokens", "2",
                 "what color"]) == 0
    capsys.readouterr()

    shutil.rmtree(tmp_path / "home2" / "towers")
    with pytest.raises(LntuneError, match=r"the vision tower 'towers/tiny-tower' is not in \$LNTUNE_HOME"):
        load_mllm(moved)
    shutil.rmtree(tmp_path / "elsewhere" / "stage1")
    with pytest.raises(LntuneError, match=r"lntune.json: the base run is missing \(looked for .*stage1 or .*stage1\)"):
        load_mllm(moved)


def test_a_run_moved_alone_finds_a_base_that_stayed(tmp_path, monkeypatch):
    inputs = make_tiny_run_inputs(tmp_path / "inputs", samples=8)
    monkeypatch.setenv("LNTUNE_HOME", str(tmp_path / "home"))
    stage1 = _train(inputs, tmp_path / "stage1", vision=inputs["model"]["vision"])
    stage2 = _train(inputs, tmp_path / "runs" / "stage2", base=str(stage1))
    image = Image.new("RGB", (32, 32), COLORS["red"])
    before = _logits(stage2, image)
    shutil.move(stage2, tmp_path / "stage2-moved")  # the relative reference now misses; the absolute one holds
    assert torch.equal(_logits(tmp_path / "stage2-moved", image), before)
