"""Bounded configs: YAML aliases are refused (a 1 KB alias bomb would expand to gigabytes), values in messages
are cut short, a config that is a folder or a binary file is one error line, and sizes that cannot be meant
are refused."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import assert_one_error, cli, snapshot  # noqa: E402

def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """`[&a [x, ...], &b [*a, ...], &c [*b, ...], ...]`: `width ** levels` items once expanded, a few hundred bytes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lists = [f"&a [{', '.join(['x'] * width)}]"] + [f"&{name} [{', '.join(['*' + prev] * width)}]"
                                                   for prev, name in zip(names, names[1:])]
    return "[" + ", ".join(lists) + "]"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text("train:\n  track_grads: " + alias_bomb() + "\n")  # 9^9 = 387 million items once expanded
    assert len(config.read_bytes()) < 1024
    assert_one_error(*cli("train", "--config", config, f"output_dir={tmp_path / 'run'}"),
                     f"{config}: line 2, column 53: YAML aliases (*a) are not allowed")
    assert not (tmp_path / "run").exists()
    from lntune.config import load_config
    from lntune.errors import LntuneError

    started = time.perf_counter()  # the config alone: expanding it for a message took minutes and gigabytes
    with pytest.raises(LntuneError, match="YAML aliases"):
        load_config(config)
    assert time.perf_counter() - started < 5


def test_a_huge_value_is_shown_cut_short(tmp_path):
    config = tmp_path / "long.yaml"
    config.write_text("train:\n  lr: " + "9" * 100_000 + "x\n")
    line = assert_one_error(*cli("train", "--config", config), f"{config}: train.lr: '9999", "(100003 characters)")
    assert len(line) < 300


def test_a_config_that_is_a_folder_or_binary_is_one_error(tmp_path):
    before = snapshot(tmp_path)
    assert_one_error(*cli("train", "--config", tmp_path), f"{tmp_path}: is a folder, not a config file")
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert_one_error(*cli("train", "--config", binary), f"{binary}: not UTF-8 text")
    assert snapshot(tmp_path, skip=[binary]) == before


def test_a_batch_larger_than_the_data_is_clamped_with_a_warning(tiny, tmp_path):
    import json

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(tiny["inputs"]))
    status, err = cli("train", "--config", config, f"output_dir={tmp_path / 'run'}", "train.batch_size=100000000000",
                      "train.max_steps=1")
    assert status == 0, err
    assert "lntune: warning: train.batch_size 100000000000 x 1 processes is more than the 8 samples; using " \
           "batch_size 8" in err
