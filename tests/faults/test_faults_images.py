"""Bad images: a NUL byte in an image path is a bad sample (an error naming it, or skipped with
`on_bad_sample: skip`), and an image too large to decode safely (a decompression bomb) is one error line in
`eval` and `chat`, naming the image."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import assert_one_error, cli, snapshot  # noqa: E402
from test_eval_helpers import write_tiny_benchmarks  # noqa: E402


def _data_with_a_nul_byte(tiny, tmp_path) -> Path:
    data = json.loads(json.dumps(tiny["inputs"]))
    records = json.loads(Path(data["data"]["path"]).read_text())
    records[3]["image"] = "3.png\x00.txt"
    (tmp_path / "data.json").write_text(json.dumps(records))
    data["data"]["path"] = str(tmp_path / "data.json")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(data))
    return config


def test_a_nul_byte_in_an_image_path_is_a_bad_sample(tiny, tmp_path):
    config = _data_with_a_nul_byte(tiny, tmp_path)
    before = snapshot(tmp_path)
    assert_one_error(*cli("train", "--config", config, f"output_dir={tmp_path / 'run'}", "train.max_steps=1"),
                     "s3", "holding a NUL byte")
    assert snapshot(tmp_path, skip=[tmp_path / "run"]) == before
    status, err = cli("train", "--config", config, f"output_dir={tmp_path / 'run2'}", "train.max_steps=1",
                      "data.on_bad_sample=skip")
    assert status == 0, err


@pytest.fixture
def small_bomb_limit(monkeypatch):
    """Pillow refuses images over 2 x MAX_IMAGE_PIXELS: with the limit at 100 pixels, any 32 x 32 image is a bomb."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


def test_a_decompression_bomb_in_eval_is_one_error(tiny, tmp_path, small_bomb_limit):
    data, images = write_tiny_benchmarks(tmp_path / "bench")
    out = tmp_path / "eval"
    before = snapshot(tmp_path)
    assert_one_error(*cli("eval", "--model", tiny["stage2"], "--tasks", "pope", "--data-root", data, "--image-root",
                          images, "--limit", "1", "--max-new-tokens", "2", "--out", out),
                     "pope: cannot read the image of sample", "exceeds limit")
    assert snapshot(tmp_path, skip=[out]) == before


def test_a_decompression_bomb_in_chat_is_one_error(tiny, tmp_path, small_bomb_limit):
    from PIL import Image

    image = tmp_path / "big.png"
    Image.new("RGB", (32, 32)).save(image)
    assert_one_error(*cli("chat", "--model", tiny["stage2"], "--image", image, "what color"),
                     f"--image {image}: not a readable image", "exceeds limit")
