"""DeepSpeed ZeRO-2 and ZeRO-3 on 2 CPU processes (DeepSpeed's CPU accelerator, gloo), launched the documented way:

    accelerate launch --config_file configs/accelerate/deepspeed_zero{2,3}_cpu.yaml -m lntune.cli train --config CFG

`layernorm` and `lora` train with the losses of one process with the same global batch; the saved
trainable.safetensors is gathered whole (ZeRO-3's partitions included) and loads in one process; a SIGKILLed
ZeRO-3 run resumes from its checkpoint (optimizer shards in checkpoint-N/deepspeed) and finishes; what the engine
cannot do is refused in one line. The smoke config (the embedded model) under ZeRO-2 and ZeRO-3 ran outside the
suite, to keep it short (docs/training.md).

Tolerance (fp32), as for FSDP (tests/test_fsdp.py): losses within 1e-5 relative, trained tensors within 1e-4
absolute of one process (measured over ZeRO-2/3 x layernorm/lora and 2 smoke steps: 2.3e-7 and 8.1e-7).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_fsdp import _assert_same_result, _config_file, _env, _one_process, assert_refused_in_one_process, free_port
from tiny_models import make_tiny_run_inputs

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _zero_command(stage, config_path, *overrides):
    config = REPO / "configs" / "accelerate" / f"deepspeed_zero{stage}_cpu.yaml"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--main_process_port",
            str(free_port()), "-m", "lntune.cli", "train", "--config", str(config_path), *overrides]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_tiny_run_inputs(tmp_path_factory.mktemp("deepspeed"), samples=16)


CASES = {
    "zero2-layernorm": (2, {"strategy": "layernorm"}),
    "zero3-lora": (3, {"strategy": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_two_zero_processes_equal_one_process(inputs, tmp_path, name):
    from lntune.model import load_mllm

    stage, options = CASES[name]
    config_path, data = _config_file(inputs, tmp_path, max_steps=4, batch_size=4, **options)
    one = _one_process(data, tmp_path / "one")
    result = subprocess.run(_zero_command(stage, config_path, f"output_dir={tmp_path / 'zero'}", "train.batch_size=2"),
                            env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "effective batch 2 x 1 accum x 2 processes = 4" in result.stdout
    _assert_same_result(one, tmp_path / "zero")
    # whole tensors that one process loads: what `lntune eval` and `chat` run
    model, _ = load_mllm(tmp_path / "zero")
    saved, params = load_file(str(tmp_path / "zero" / "trainable.safetensors")), dict(model.named_parameters())
    assert all(torch.equal(params[name], tensor) for name, tensor in saved.items())


def test_zero3_run_killed_with_sigkill_resumes_and_finishes(inputs, tmp_path):
    config_path, data = _config_file(inputs, tmp_path, max_steps=10, epochs=3, save_steps=2, batch_size=4)
    one = _one_process(data, tmp_path / "one")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_zero_command(3, config_path, f"output_dir={killed}", "train.batch_size=2"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (killed / "checkpoint-4").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
    proc.wait()
    assert (killed / "checkpoint-4" / "deepspeed").is_dir() and not (killed / "trainable.safetensors").exists()
    result = subprocess.run(_zero_command(3, config_path, f"output_dir={killed}", "train.batch_size=2", "--resume"),
                            env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout
    assert [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()] == list(range(1, 11))
    _assert_same_result(one, killed)


@pytest.mark.parametrize("override,reason", [
    ("train.grad_accum=2", "train.grad_accum is 2: under DeepSpeed lntune runs one micro-batch per step"),
    ("train.on_nonfinite=skip", "train.on_nonfinite=skip cannot run under DeepSpeed"),
])
def test_what_the_engine_cannot_do_is_refused_in_one_line(inputs, tmp_path, override, reason):
    config_path, _ = _config_file(inputs, tmp_path)
    # one DeepSpeed process, as the launcher starts each: accelerate sees the DeepSpeed request
    assert_refused_in_one_process(config_path, tmp_path, override, reason, ACCELERATE_USE_DEEPSPEED="true",
                                  ACCELERATE_DEEPSPEED_ZERO3_INIT="false",
                                  ACCELERATE_DEEPSPEED_CONFIG_FILE=str(REPO / "configs" / "deepspeed" / "zero2_cpu.json"))
