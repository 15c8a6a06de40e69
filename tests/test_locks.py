"""One writer per output: OS file locks between real processes, released by SIGKILL; two `lntune train` on one
output_dir; a cache builder (the embedded LLM's conversion) refused while another process converts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lntune.errors import LntuneError
from lntune.locks import LOCK_FILE, hold_lock, temp_name

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
HOLD = ("import sys, time\nfrom lntune.locks import hold_lock\n"
        "with hold_lock(sys.argv[1], 'test folder', inside=sys.argv[2] == 'inside'):\n"
        "    print('held', flush=True)\n    time.sleep(600)\n")


def _holder(target: Path, inside=True, env=None):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "inside" if inside else "beside"],
                            stdout=subprocess.PIPE, text=True, env=env or ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_second_process_is_refused_naming_the_holder_and_sigkill_releases_the_lock(tmp_path):
    proc = _holder(tmp_path / "out")
    try:
        with pytest.raises(LntuneError, match=rf"out: another lntune process \(pid {proc.pid}\) is writing this run"):
            with hold_lock(tmp_path / "out", "run"):
                pass
    finally:
        _kill(proc)
    assert (tmp_path / "out" / LOCK_FILE).exists()  # the killed holder's file stays, its lock does not
    with hold_lock(tmp_path / "out", "run") as lock:
        assert lock == tmp_path / "out" / LOCK_FILE
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()  # removed on release


def test_locks_are_reentrant_within_a_process_and_temp_names_are_per_process(tmp_path):
    with hold_lock(tmp_path, "run"):
        with hold_lock(tmp_path, "run"):
            pass
        proc = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path), "inside"], env=ENV, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode != 0 and f"(pid {os.getpid()})" in proc.stderr  # still held after the inner block
    assert temp_name(tmp_path / "a.json").name == f"a.json.tmp-{os.getpid()}"


def test_two_train_processes_on_one_output_dir(tmp_path):
    from tiny_models import make_tiny_run_inputs

    config = make_tiny_run_inputs(tmp_path / "inputs")
    config["train"].update(max_steps=None, epochs=1000)  # long enough for the second one to start
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lntune.cli", "train", "--config", str(config_path), f"output_dir={out}"]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (out / "metrics.jsonl").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended early"
        second = subprocess.run([*cmd, "train.lr=0.5", "train.batch_size=2"], env=ENV, capture_output=True,
                                text=True, timeout=240)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"lntune: error: {out}: another lntune process (pid {first.pid}) is writing "
                                         "this training run; wait for it to finish or stop it (the lock goes away "
                                         "when that process exits)")
        assert json.loads((out / "run_config.json").read_text())["train"]["lr"] == config["train"]["lr"]
    finally:
        _kill(first)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))  # one writer: no interleaved rows


def test_the_embedded_llm_conversion_is_refused_while_another_process_converts(tmp_path, monkeypatch):
    from lntune.model import embedded

    home = tmp_path / "home"
    monkeypatch.setenv("LNTUNE_HOME", str(home))
    target = home / "models" / embedded.CACHE_NAME
    proc = _holder(target, inside=False, env={**ENV, "LNTUNE_HOME": str(home)})
    try:
        with pytest.raises(LntuneError, match=rf"another lntune process \(pid {proc.pid}\) is writing this embedded "
                                              "LLM conversion"):
            embedded.embedded_llm_dir()
    finally:
        _kill(proc)
    assert not target.exists()
