"""Finite or nothing: non-finite learning rates, gradients and weights never reach a checkpoint or a result, and the
run exits non-zero; numeric config keys are validated by name; metrics.jsonl is strict JSON; a resume or a
pipeline re-run with other inputs is refused; an unwritable output folder is one clear line."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lntune.cli import main
from lntune.config import load_config
from lntune.errors import LntuneError
from lntune.train.loop import train
from tiny_models import make_tiny_run_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_tiny_run_inputs(tmp_path_factory.mktemp("finite"))


def _data(inputs, out, **train):
    data = json.loads(json.dumps(inputs))
    data["output_dir"] = str(out)
    data["train"].update(train)
    return data


def _config_file(inputs, tmp_path, **train) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_data(inputs, tmp_path / "run", **train)))
    return path


def _all_finite(folder: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_file(str(folder / "trainable.safetensors")).values())


def _strict_rows(path: Path) -> list[dict]:
    def refuse(token):
        raise AssertionError(f"{path}: bare {token} is not JSON")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("override, message", [
    ("train.lr=.inf", "train.lr: must be a finite number, got inf"),
    ("train.lr=.nan", "train.lr: must be a finite number, got nan"),
    ("train.max_steps=0", "train.max_steps: must be >= 1, got 0"),
    ("train.max_steps=-1", "train.max_steps: must be >= 1, got -1"),
    ("train.weight_decay=-1", "train.weight_decay: must be >= 0, got -1.0"),
    ("train.max_grad_norm=.inf", "train.max_grad_norm: must be a finite number, got inf"),
])
def test_bad_numbers_are_refused_naming_the_key_before_anything_is_written(inputs, tmp_path, capsys, override, message):
    assert main(["train", "--config", str(_config_file(inputs, tmp_path)), override]) == 2
    assert capsys.readouterr().err.strip().endswith(message)
    assert not (tmp_path / "run").exists()


def test_an_update_to_infinite_weights_stops_the_run_and_saves_nothing(inputs, tmp_path):
    config = load_config(data=_data(inputs, tmp_path / "run", max_steps=1, save_steps=1))
    config.train.lr = math.inf  # what the config refuses, to reach the loop's own check
    with pytest.raises(LntuneError, match=r"the update of step 1 made \d+ trainable tensors NaN or infinite .*"
                                          r"last good checkpoint: none"):
        train(config)
    out = tmp_path / "run"
    assert not (out / "trainable.safetensors").exists() and not list(out.glob("checkpoint-*"))
    assert not (out / "summary.json").exists()


def test_lr_1e30_stops_at_the_first_nan_gradient_and_keeps_the_last_finite_checkpoint(inputs, tmp_path, capsys):
    config_path = _config_file(inputs, tmp_path, lr=1e30, save_steps=1, save_total_limit=1)
    assert main(["train", "--config", str(config_path)]) == 2
    out = tmp_path / "run"
    assert (f"lntune: error: non-finite gradient norm (nan) at step 3: stopped before updating the weights; "
            f"last good checkpoint: {out / 'checkpoint-2'}\n") in capsys.readouterr().err
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"] and _all_finite(out / "checkpoint-2")
    assert not (out / "trainable.safetensors").exists()
    assert [r["grad_norm"] for r in _strict_rows(out / "metrics.jsonl")][:2] == [pytest.approx(1.8516, abs=1e-3),
                                                                                 pytest.approx(3.4171, abs=1e-3)]
    assert main(["train", "--config", str(config_path), "--resume"]) == 2  # resumes the finite one, stops again
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"] and _all_finite(out / "checkpoint-2")


def test_skip_policy_skips_a_nan_step_and_writes_null_in_strict_json(inputs, tmp_path, monkeypatch, capsys):
    from lntune.train import loss as loss_module

    real, calls = loss_module.SupervisedLoss.forward, {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        value = real(self, *args)
        return value * float("nan") if calls["n"] == 3 else value

    monkeypatch.setattr(loss_module.SupervisedLoss, "forward", poisoned)
    out = train(load_config(data=_data(inputs, tmp_path / "run", max_steps=4, on_nonfinite="skip")))
    rows = _strict_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[2]["loss"] is None and rows[3]["loss"] > 0
    assert _all_finite(out)
    captured = capsys.readouterr()
    assert "non-finite loss (nan) at step 3: skipped this update" in captured.out
    assert "1 steps skipped" in captured.out and "written as null" in captured.err


def test_skip_policy_with_every_step_skipped_is_an_error_and_writes_no_result(inputs, tmp_path, monkeypatch, recwarn):
    from lntune.train import loss as loss_module

    real = loss_module.SupervisedLoss.forward
    monkeypatch.setattr(loss_module.SupervisedLoss, "forward", lambda self, *args: real(self, *args) * float("nan"))
    out = tmp_path / "run"
    with pytest.raises(LntuneError, match="all 3 steps had non-finite values and were skipped: nothing was trained"):
        train(load_config(data=_data(inputs, out, max_steps=3, on_nonfinite="skip")))
    assert not (out / "trainable.safetensors").exists() and not (out / "summary.json").exists()
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]  # the skip is deliberate, not a bug


def test_a_nonfinite_checkpoint_is_refused_on_resume(inputs, tmp_path):
    from safetensors.torch import save_file

    config = load_config(data=_data(inputs, tmp_path / "run", max_steps=4, save_steps=2))
    with pytest.raises(LntuneError):  # stop after checkpoint-2 by poisoning step 3's learning rate
        config.train.lr = 1e30
        train(config)
    ckpt = tmp_path / "run" / "checkpoint-2" / "trainable.safetensors"
    tensors = load_file(str(ckpt))
    name = sorted(tensors)[0]
    tensors[name][0] = float("nan")  # as an older version could have written it
    save_file(tensors, str(ckpt))
    with pytest.raises(LntuneError, match=rf"checkpoint-2/trainable.safetensors: holds NaN or infinite values \(e.g. "
                                          rf"{name}\); delete this checkpoint"):
        train(config, resume=True)


def test_resuming_with_other_inputs_is_refused(inputs, tmp_path):
    config = load_config(data=_data(inputs, tmp_path / "run", max_steps=4, save_steps=2, lr=1e30))
    with pytest.raises(LntuneError):
        train(config)  # leaves checkpoint-2
    other = load_config(data=_data(inputs, tmp_path / "run", max_steps=4, save_steps=2, lr=1e-3))
    with pytest.raises(LntuneError, match=r"holds a run with other inputs \(train.lr: 1e\+30 -> 0.001\); resuming "
                                          "would mix two runs"):
        train(other, resume=True)


def test_pipeline_refuses_a_finished_run_of_other_inputs(inputs, tmp_path):
    from lntune.pipeline import run_stage

    run_stage(load_config(data=_data(inputs, tmp_path / "run", max_steps=1)))
    assert run_stage(load_config(data=_data(inputs, tmp_path / "run", max_steps=1, save_steps=5))) == tmp_path / "run"
    with pytest.raises(LntuneError, match=r"run holds a finished run trained from other inputs \(train.max_steps: "
                                          r"1 -> 2\); use another output folder, or delete this one"):
        run_stage(load_config(data=_data(inputs, tmp_path / "run", max_steps=2)))
    data = Path(inputs["data"]["path"])
    copy = tmp_path / "data.json"
    copy.write_text(json.dumps(json.loads(data.read_text())[:-1]))
    changed = _data(inputs, tmp_path / "run", max_steps=1)
    changed["data"]["path"] = str(copy)
    with pytest.raises(LntuneError, match=r"data.path: .*data.json"):
        run_stage(load_config(data=changed))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_clear_line(inputs, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(LntuneError, match=r"ro/run: permission denied \(cannot write the training run there"):
            train(load_config(data=_data(inputs, parent / "run", max_steps=1)))
    finally:
        parent.chmod(0o755)


def test_an_output_dir_that_cannot_be_created_is_one_clear_line(inputs, tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    with pytest.raises(LntuneError, match=r"file.txt/run: cannot write the training run there \(Not a directory\)"):
        train(load_config(data=_data(inputs, tmp_path / "file.txt" / "run", max_steps=1)))
