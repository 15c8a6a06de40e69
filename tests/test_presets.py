"""Named presets as data (lntune/configs/presets/*.yaml): one loader, one error for unknown names, exact values."""

import pytest

from lntune.errors import LntuneError
from lntune.eval.tasks.registry import EVAL_TASKS
from lntune.presets import check_name, preset, preset_names
from lntune.run_dir import RunDir


@pytest.mark.parametrize("kind, names", [
    ("world", ("smoke", "quick", "full")),
    ("quickstart", ("smoke", "quick")),
    ("reproduce", ("world-quick", "world-full")),
    ("params", ("llava-llama2-7b", "llava-llama2-13b", "llava-vicuna-7b")),
])
def test_every_kind_lists_its_presets_and_refuses_unknown_names_alike(kind, names):
    assert preset_names(kind) == names
    with pytest.raises(LntuneError, match=rf"^unknown {kind} preset 'huge'; choose one of: {', '.join(names)}$"):
        preset(kind, "huge")


def test_a_python_table_gets_the_same_error():
    with pytest.raises(LntuneError, match="^unknown bench preset 'x'; choose one of: a, b$"):
        check_name("bench", "x", ("a", "b"))
    assert preset("bench", "b", table={"a": 1, "b": 2}) == 2


def test_presets_read_exact_values_and_merge_their_defaults():
    from lntune.quickstart import get_preset as quickstart_preset
    from lntune.reproduce.experiments import get_preset as reproduce_preset
    from lntune.strategies import PAPER_STRATEGIES
    from lntune.sweep import PAPER_GRID
    from lntune.world.presets import get_preset as world_preset

    smoke, quick, full = (world_preset(n) for n in ("smoke", "quick", "full"))
    assert (smoke.train_images, smoke.tower.steps, smoke.tower.lr, smoke.tower.hidden_size) == (40, 20, 1e-3, 64)
    assert (quick.train_images, quick.tower.steps, quick.tower.word_cosine_weight) == (800, 600, 5.0)
    assert (full.vqav2_questions, full.tower.steps, full.tower.hidden_size) == (1002, 1200, 128)
    assert quickstart_preset("smoke").eval_limits == dict.fromkeys(EVAL_TASKS, 4)
    assert quickstart_preset("quick").eval_limits == {"coco": 32, "flickr30k": 32}  # every other question
    assert reproduce_preset("world-full").lrs == {s: tuple(PAPER_GRID) for s in PAPER_STRATEGIES}
    assert reproduce_preset("world-quick").lrs == {"finetune": (1e-4, 5e-5, 2e-5), "lora": (1e-3, 3e-4, 1e-4),
                                                   "attn-qv": (1e-3, 3e-4, 1e-4), "attn-mlp": (1e-4, 5e-5, 2e-5),
                                                   "layernorm": (2e-3, 1e-3, 6e-4),
                                                   "layernorm-simple": (2e-3, 1e-3, 6e-4)}
    assert reproduce_preset("world-quick").default_lrs["layernorm"] == 2e-3
    assert reproduce_preset("world-quick").eval_limit == {"pope": 100, "vqav2": 100, "coco": 32, "flickr30k": 32}
    preset("world", "smoke")["train_images"] = 0  # a copy: the loaded presets stay as written
    assert preset("world", "smoke")["train_images"] == 40


def test_run_dir_names_its_files_and_knows_when_a_run_finished(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_run and not run.finished
    run.run_file.write_text("{}")
    assert run.is_run and not run.finished
    run.trainable_file.write_bytes(b"")
    assert run.finished
    assert (run.trainable_file.name, run.run_file.name, run.checkpoint(7).name) == (
        "trainable.safetensors", "lntune.json", "checkpoint-7")


def test_atomic_writes_leave_no_temporary_file(tmp_path):
    from lntune.locks import replace_file, write_text_atomic

    write_text_atomic(tmp_path / "a.json", "1")
    write_text_atomic(tmp_path / "a.json", "2")
    assert (tmp_path / "a.json").read_text() == "2"
    with pytest.raises(RuntimeError):
        replace_file(tmp_path / "a.json", lambda tmp: (tmp.write_text("half"), (_ for _ in ()).throw(RuntimeError())))
    assert (tmp_path / "a.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
