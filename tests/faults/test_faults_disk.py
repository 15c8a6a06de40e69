"""Full disks and unwritable folders: a write that fails (a file-size limit stands in for a full disk: the write
fails with EFBIG where a full disk fails with ENOSPC) ends in one error line naming the file, the previous
result survives, and a traceback appears only when asked for (--debug or LNTUNE_DEBUG=1)."""

import errno
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import copy_run  # noqa: E402
from support import assert_one_error, cli, cli_child, snapshot  # noqa: E402

LIMIT = 16 * 1024  # bytes: the tiny model's weights (~50 KB) do not fit, its config does


def test_disk_full_during_export_is_one_error_and_leaves_no_half_export(tiny, tmp_path):
    out = tmp_path / "hf"
    before = snapshot(tiny["root"])
    status, err = cli_child("export", "--model", tiny["stage2"], "--out", out, max_file_bytes=LIMIT)
    line = assert_one_error(status, err, "File too large", "nothing was replaced")
    assert str(tmp_path) in line and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("hf.tmp-*"))  # the half-written folder was removed
    assert snapshot(tiny["root"]) == before


def test_disk_full_while_saving_a_run_keeps_its_checkpoint(tiny, tmp_path):
    run = copy_run(tiny["stage2"], tmp_path / "run")
    (run / "trainable.safetensors").unlink()  # killed before its result: a resume continues from checkpoint-1
    kept = snapshot(run / "checkpoint-1")
    data = json.loads(json.dumps(tiny["inputs"]))
    data["model"]["base"] = str(tiny["stage1"])
    data["train"].update(strategy="layernorm", max_steps=2, save_steps=1, batch_size=2)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(data))
    status, err = cli_child("train", "--config", config, f"output_dir={run}", "--resume", max_file_bytes=2048)
    assert_one_error(status, err, f"{run / 'trainable.safetensors'}: not written: ", "File too large")
    assert snapshot(run / "checkpoint-1") == kept
    assert not (run / "trainable.safetensors").exists() and not list(run.glob("*.tmp-*"))


@pytest.mark.parametrize("ask", ["--debug", "LNTUNE_DEBUG=1"])
def test_the_traceback_is_shown_only_when_asked_for(tmp_path, monkeypatch, ask):
    argv = ("score", "pope", "--annotations", tmp_path / "none", "--predictions", tmp_path / "p.jsonl")
    status, err = cli(*argv)
    assert_one_error(status, err, "not a folder")
    if ask == "--debug":
        argv = ("--debug", *argv)
    else:
        monkeypatch.setenv("LNTUNE_DEBUG", "1")
    status, err = cli(*argv)
    assert status == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("lntune: error: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see the EROFS case below")
def test_an_unwritable_output_folder_is_one_error(tiny, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert_one_error(*cli("export", "--model", tiny["stage2"], "--out", parent / "hf"), str(parent))
    finally:
        parent.chmod(0o755)


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only file system"), (errno.ENOSPC, "no space left"),
                                         (errno.EACCES, "permission denied")])
def test_write_failures_of_the_machine_are_one_line_naming_the_file(monkeypatch, tmp_path, code, words):
    """A read-only mount, a full disk and a permission error, raised where an export writes its weights."""
    import lntune.model.export as export

    def failing(model, processor, out, kind=None):
        raise OSError(code, os.strerror(code), str(Path(out) / "model.safetensors"))

    monkeypatch.setattr(export, "save_mllm", failing)
    out = tmp_path / "hf"
    assert_one_error(*cli("export", "--model", tiny_model_dir(tmp_path), "--out", out),
                     f"{out / 'model.safetensors'}: {words}")


def tiny_model_dir(tmp_path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_eval_helpers import tiny_llava

    model, processor = tiny_llava()
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    return tmp_path / "model"
