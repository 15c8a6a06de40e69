"""Writers own what they write: export, eval, train and world generation write only into a folder that is new,
empty or their own, never into (or above) their inputs; --overwrite deletes only lntune's files; one export at a
time writes a folder; the temporary folders of killed writers are cleaned by the next write."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import ENV, assert_one_error, cli, dead_pid, snapshot  # noqa: E402
from test_eval_helpers import write_tiny_benchmarks  # noqa: E402


def test_export_refuses_a_folder_it_did_not_write(tiny, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("four years of work")
    before = snapshot(tiny["root"]) | snapshot(tmp_path)
    assert_one_error(*cli("export", "--model", tiny["stage2"], "--out", out), f"{out}: holds files lntune did not "
                     "write there ('thesis.txt')", "choose another --out")
    assert snapshot(tiny["root"]) | snapshot(tmp_path) == before


def test_export_never_writes_over_or_above_its_model(tiny, monkeypatch):
    stage2 = tiny["stage2"]
    before = snapshot(tiny["root"])
    assert_one_error(*cli("export", "--model", stage2, "--out", stage2), f"{stage2}: --out is the model ({stage2})")
    assert_one_error(*cli("export", "--model", stage2, "--out", tiny["stage1"]), "--out is the model's base")
    monkeypatch.chdir(stage2)  # `--out ..` from inside the run: the folder holding the run and its base
    assert_one_error(*cli("export", "--model", ".", "--out", ".."), "..: --out holds the model")
    assert snapshot(tiny["root"]) == before


def test_export_replaces_only_its_own_export_and_cleans_dead_writers_temps(tiny, tmp_path):
    out = tmp_path / "hf"
    assert cli("export", "--model", tiny["stage2"], "--out", out)[0] == 0
    first = snapshot(out)
    stale = tmp_path / f"hf.tmp-{dead_pid()}"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "model.safetensors").write_bytes(b"half" * 1000)
    assert cli("export", "--model", tiny["stage2"], "--out", out)[0] == 0  # again: its own export is replaced
    assert snapshot(out) == first and not stale.exists()
    (out / "notes.md").write_text("my notes")
    assert_one_error(*cli("export", "--model", tiny["stage2"], "--out", out), "('notes.md')")
    assert (out / "notes.md").read_text() == "my notes" and snapshot(out) == {**first, "notes.md": snapshot(out)["notes.md"]}


def test_a_second_export_to_one_folder_is_refused_while_the_first_writes(tiny, tmp_path):
    out = tmp_path / "hf"
    hold = ("import sys, time\nfrom lntune.locks import hold_lock\n"
            "with hold_lock(sys.argv[1], 'export', inside=False):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_one_error(*cli("export", "--model", tiny["stage2"], "--out", out),
                         f"another lntune process (pid {holder.pid}) is writing this export")
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()


def test_eval_never_writes_above_its_images_and_overwrite_deletes_only_its_files(tiny, tmp_path):
    data, images = write_tiny_benchmarks(tmp_path / "bench")
    pope_images = tmp_path / "D" / "pope"
    shutil.copytree(images, pope_images)
    argv = ["eval", "--model", tiny["stage2"], "--tasks", "pope", "--data-root", data, "--limit", "1",
            "--max-new-tokens", "2", "--bootstrap", "0"]
    before = snapshot(tmp_path)
    assert_one_error(*cli(*argv, "--image-root", pope_images, "--out", tmp_path / "D", "--overwrite"),
                     f"{tmp_path / 'D'}: --out holds the image root ({pope_images})")
    assert snapshot(tmp_path) == before  # the first eval never starts, so no --overwrite can delete the images

    out = tmp_path / "eval"
    assert cli(*argv, "--image-root", images, "--out", out)[0] == 0
    (out / "pope" / "photo.jpg").write_bytes(b"not lntune's")
    kept = snapshot(tmp_path)
    assert_one_error(*cli(*argv, "--image-root", images, "--out", out, "--overwrite"),
                     f"{out / 'pope'}: holds files no evaluation writes (photo.jpg)")
    assert snapshot(tmp_path) == kept
    (out / "pope" / "photo.jpg").unlink()
    assert cli(*argv, "--image-root", images, "--out", out, "--overwrite")[0] == 0


def test_eval_and_train_refuse_a_folder_holding_other_files(tiny, tmp_path):
    data, images = write_tiny_benchmarks(tmp_path / "bench")
    out = tmp_path / "papers"
    out.mkdir()
    (out / "draft.tex").write_text("\\section{}")
    before = snapshot(tmp_path)
    assert_one_error(*cli("eval", "--model", tiny["stage2"], "--tasks", "pope", "--data-root", data, "--image-root",
                          images, "--out", out), f"{out}: holds files lntune did not write there ('draft.tex')")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(tiny["inputs"]))
    before[config.name] = snapshot(tmp_path)[config.name]
    assert_one_error(*cli("train", "--config", config, f"output_dir={out}"),
                     f"{out}: holds files lntune did not write there ('draft.tex')", "choose another output_dir")
    assert_one_error(*cli("train", "--config", config, "output_dir=/"), "/: is the filesystem root")
    assert snapshot(tmp_path) == before


def test_world_generate_refuses_a_folder_holding_other_files(tmp_path):
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert_one_error(*cli("world", "generate", "--out", out, "--preset", "smoke", "--quiet"), f"{out}")
    assert (out / "keep.txt").read_text() == "x" and os.listdir(out) == ["keep.txt"]


def test_reproduce_refuses_a_folder_holding_other_files(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep.csv").write_text("1,2\n")
    before = snapshot(tmp_path)
    assert_one_error(*cli("reproduce", "--preset", "world-quick", "--out", out, "--report-only"),
                     f"{out}: holds files lntune did not write there ('keep.csv')")
    assert snapshot(tmp_path) == before


def test_world_generate_force_replaces_only_a_world_holding_its_own_files(tmp_path):
    out = tmp_path / "w"
    assert cli("world", "generate", "--out", out, "--preset", "smoke", "--quiet")[0] == 0
    (out / "my-notes.txt").write_text("keep")
    before = snapshot(tmp_path)
    assert_one_error(*cli("world", "generate", "--out", out, "--preset", "smoke", "--quiet", "--force"),
                     f"{out}: holds files lntune did not write there ('my-notes.txt')")
    assert snapshot(tmp_path) == before
