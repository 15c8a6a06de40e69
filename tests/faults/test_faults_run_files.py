"""Inputs checked whole: a run's weights file must hold every trained tensor, a base run is pinned by its
weights (a replaced one is refused, a moved one found), a resume needs the run's recorded inputs, and every
damaged run, checkpoint or evaluation file ends in one error line naming it, with nothing else changed."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import copy_run, train_tiny  # noqa: E402
from support import assert_one_error, cli, snapshot  # noqa: E402
from test_eval_helpers import write_tiny_benchmarks  # noqa: E402


def _stage2_config(tiny, path: Path, base=None) -> Path:
    """A config file equal to the one stage 2 was trained from (so that a resume is allowed)."""
    data = json.loads(json.dumps(tiny["inputs"]))
    data["model"]["base"] = str(base or tiny["stage1"])
    data["train"].update(strategy="layernorm", max_steps=2, save_steps=1, batch_size=2)
    path.write_text(json.dumps(data))
    return path


def test_a_weights_file_missing_tensors_is_refused(tiny, tmp_path):
    from safetensors.torch import save_file

    run = copy_run(tiny["stage2"], tmp_path / "run")
    save_file({}, str(run / "trainable.safetensors"))  # valid, but empty
    before = snapshot(tmp_path)
    assert_one_error(*cli("export", "--model", run, "--out", tmp_path / "hf"),
                     f"{run / 'trainable.safetensors'}: ", "trained tensors are missing", "the file is incomplete")
    assert snapshot(tmp_path) == before and not (tmp_path / "hf").exists()


def test_a_weights_file_with_a_tensor_of_another_dtype_is_refused(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    run = copy_run(tiny["stage2"], tmp_path / "run")
    tensors = load_file(str(run / "trainable.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].to(dtype=__import__("torch").int32)
    save_file(tensors, str(run / "trainable.safetensors"))
    assert_one_error(*cli("export", "--model", run, "--out", tmp_path / "hf"), f"{name} has dtype int32")


def test_a_replaced_base_is_refused_and_a_moved_one_is_found(tiny, tmp_path):
    runs = tmp_path / "runs"
    stage1 = copy_run(tiny["stage1"], runs / "stage1")
    train_tiny(tiny["inputs"], runs / "stage2", model={"base": str(stage1)}, train={"max_steps": 1})
    moved = tmp_path / "moved"
    shutil.move(runs, moved)  # the run and its base together, to a new place: found by the relative reference
    assert cli("export", "--model", moved / "stage2", "--out", tmp_path / "hf")[0] == 0

    shutil.rmtree(moved / "stage1")  # another stage-1 run in its place
    train_tiny(tiny["inputs"], moved / "stage1", train={"strategy": "connector", "max_steps": 1, "seed": 7})
    before = snapshot(tmp_path)
    assert_one_error(*cli("export", "--model", moved / "stage2", "--out", tmp_path / "hf2"),
                     f"{moved / 'stage2' / 'lntune.json'}: the base run at ", "holds other weights",
                     "this run was trained on")
    assert snapshot(tmp_path) == before


def test_a_run_moved_with_its_base_resumes(tiny, tmp_path):
    moved = tmp_path / "elsewhere"
    copy_run(tiny["stage1"], moved / "stage1")
    copy_run(tiny["stage2"], moved / "stage2")
    config = _stage2_config(tiny, tmp_path / "c.yaml", base=moved / "stage1")
    status, err = cli("train", "--config", config, f"output_dir={moved / 'stage2'}", "--resume")
    assert status == 0, err


def test_a_resume_without_the_recorded_inputs_is_refused(tiny, tmp_path):
    run = copy_run(tiny["stage2"], tmp_path / "run")
    (run / "inputs.json").unlink()
    config = _stage2_config(tiny, tmp_path / "c.yaml")
    before = snapshot(tmp_path)
    assert_one_error(*cli("train", "--config", config, f"output_dir={run}", "train.lr=0.5", "--resume"),
                     f"{run / 'inputs.json'}: missing, so what this run was trained from is unknown")
    assert snapshot(tmp_path) == before
    assert json.loads((run / "lntune.json").read_text())["config"]["train"]["lr"] == tiny["inputs"]["train"]["lr"]


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


DAMAGES = {  # file (relative to the run) -> how it is damaged, the command that reads it
    "trainable.safetensors": (_truncate, "export"),
    "lntune.json": (lambda p: p.write_text('{"base": {"kind": "run",'), "export"),
    "inputs.json": (lambda p: p.write_bytes(b"\x00\xff" * 8), "resume"),
    "checkpoint-1/optimizer.pt": (_truncate, "resume"),
    "checkpoint-1/trainable.safetensors": (lambda p: p.write_bytes(b"not a safetensors file"), "resume"),
    "checkpoint-1/state.json": (lambda p: p.write_text("[1, 2"), "resume"),
    "metrics.jsonl": (lambda p: p.write_text(p.read_text() + "{oops\n"), "resume"),
}


@pytest.mark.parametrize("name", DAMAGES)
def test_a_damaged_run_file_is_one_error_naming_it(tiny, tmp_path, name):
    run = copy_run(tiny["stage2"], tmp_path / "run")
    damage, command = DAMAGES[name]
    damage(run / name)
    if command == "resume":
        (run / "trainable.safetensors").unlink()  # killed before its result: the resume reads the checkpoint
        argv = ("train", "--config", _stage2_config(tiny, tmp_path / "c.yaml"), f"output_dir={run}", "--resume")
    else:
        argv = ("export", "--model", run, "--out", tmp_path / "hf")
    before = snapshot(tmp_path)
    assert_one_error(*cli(*argv), str(run / name))
    after = snapshot(tmp_path)
    for record in before.keys() | after.keys():
        if record != "run/run_config.json":  # what a start writes first: the config it was started with
            assert before.get(record) == after.get(record), record


@pytest.mark.parametrize("name", ["eval_config.json", "metrics.json", "eval_inputs.json"])
def test_a_damaged_evaluation_record_is_one_error_naming_it(tiny, tmp_path, name):
    data, images = write_tiny_benchmarks(tmp_path / "bench")
    out = tmp_path / "eval"
    argv = ("eval", "--model", tiny["stage2"], "--tasks", "pope", "--data-root", data, "--image-root", images,
            "--limit", "1", "--max-new-tokens", "2", "--bootstrap", "0", "--out", out)
    assert cli(*argv)[0] == 0
    (out / name).write_text('{"pope": ')
    before = snapshot(tmp_path)
    assert_one_error(*cli(*argv), str(out / name))
    assert snapshot(tmp_path) == before


def test_compare_refuses_metrics_that_disagree_with_their_units(tiny, tmp_path):
    data, images = write_tiny_benchmarks(tmp_path / "bench")
    outs = [tmp_path / "a", tmp_path / "b"]
    for model, out in zip((tiny["stage1"], tiny["stage2"]), outs):
        assert cli("eval", "--model", model, "--tasks", "pope", "--data-root", data, "--image-root", images,
                   "--limit", "2", "--max-new-tokens", "2", "--bootstrap", "0", "--out", out)[0] == 0
    assert cli("compare", *outs, "--bootstrap", "20")[0] == 0
    metrics = json.loads((outs[1] / "metrics.json").read_text())
    metrics["pope"]["mean_accuracy"] += 49
    (outs[1] / "metrics.json").write_text(json.dumps(metrics))
    before = snapshot(tmp_path)
    assert_one_error(*cli("compare", *outs, "--bootstrap", "20"), f"{outs[1] / 'metrics.json'}: pope mean_accuracy is ",
                     f"but {outs[1] / 'units' / 'pope.json'} gives ")
    assert snapshot(tmp_path) == before


def test_a_damaged_reproduction_record_is_one_error_naming_it(tmp_path):
    out = tmp_path / "repro"
    out.mkdir()
    (out / "jobs.json").write_text("{broken")
    before = snapshot(tmp_path)
    status, err = cli("reproduce", "--only", "table1", "--strategies", "layernorm", "--seeds", "0", "--no-sweep",
                      "--out", out, "--report-only")
    assert_one_error(status, err, str(out / "jobs.json"), "malformed JSON in reproduction job records")
    after = snapshot(tmp_path)
    assert after.pop("repro/.lntune-output.json", None) is not None  # the command's own folder mark, nothing else
    assert after == before
