"""Bad images are caught before training: the start-up check decodes every image fully, so a truncated PNG is
a bad sample under both `on_bad_sample` modes (an error naming it, or skipped) instead of a crash at step N."""

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from lntune.config import load_config
from lntune.errors import LntuneError
from tiny_models import make_tiny_run_inputs


@pytest.fixture(scope="module")
def truncated_inputs(tmp_path_factory):
    inputs = make_tiny_run_inputs(tmp_path_factory.mktemp("bad-images"))
    png = Path(inputs["data"]["image_folder"]) / "17.png"
    Image.frombytes("RGB", (32, 32), random.Random(0).randbytes(32 * 32 * 3)).save(png)
    png.write_bytes(png.read_bytes()[:1500])  # of ~3 kB: the header stays readable, the pixel data is cut
    with Image.open(png) as image:
        assert image.size == (32, 32)  # what a header-only check sees
    return inputs


def _dataset(inputs, mode):
    from lntune.data.dataset import LlavaDataset
    from lntune.train.loop import build_model

    _, processor = build_model(load_config(data=inputs))
    return LlavaDataset(inputs["data"]["path"], inputs["data"]["image_folder"], processor, on_bad_sample=mode)


def test_a_truncated_png_is_an_error_naming_the_sample_when_the_dataset_is_built(truncated_inputs):
    with pytest.raises(LntuneError, match=r"data.json: sample #17 \(id s17\): unreadable image '17.png': image file "
                                          r"is truncated"):
        _dataset(truncated_inputs, "error")


def test_a_truncated_png_is_skipped_with_skip_and_the_rest_is_decoded_once(truncated_inputs):
    dataset = _dataset(truncated_inputs, "skip")
    assert len(dataset) == 23 and "s17" not in [s.record["id"] for s in dataset.samples]
    assert dataset.stats["skipped"] == 1 and dataset.stats["images_decoded"] == 24
    assert isinstance(dataset.stats["image_check_s"], float)


def test_training_with_skip_runs_every_step_past_a_truncated_png(truncated_inputs, tmp_path):
    from lntune.train.loop import train

    data = json.loads(json.dumps(truncated_inputs))
    data.update(output_dir=str(tmp_path / "run"))
    data["data"]["on_bad_sample"] = "skip"
    data["train"].update(max_steps=None, epochs=1, batch_size=4)  # one pass over all 23 good samples
    out = train(load_config(data=data))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # 23 samples in batches of 4 (the last of 3)
