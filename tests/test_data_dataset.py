"""LlavaDataset and LlavaCollator: items, data types, seeded subsampling, bad samples, truncation, a real forward."""

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from test_data_support import sample, tiny_processor, write_images

from lntune.data.collate import LlavaCollator
from lntune.data.dataset import LlavaDataset
from lntune.errors import LntuneError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
MINI = FIXTURES / "llava_mini.json"
IMAGES = FIXTURES / "images"
N_IMG = 16  # 32 px images, patch 8, CLS dropped


@pytest.fixture(scope="module")
def processor():
    return tiny_processor("chatml")


def _supervised(processor, item):
    ids = [t for t, label in zip(item["input_ids"].tolist(), item["labels"].tolist()) if label != -100]
    return processor.tokenizer.decode(ids)


def test_items_of_a_llava_file(processor):
    ds = LlavaDataset(MINI, IMAGES, processor)
    assert len(ds) == 4 and ds.stats["kept"] == 4
    assert ds.types == ["conversation", "detail", "complex_reasoning", "conversation"]
    item = ds[0]
    assert set(item) == {"input_ids", "labels", "attention_mask", "pixel_values"}
    assert item["input_ids"].dtype == item["labels"].dtype == item["attention_mask"].dtype == torch.long
    assert item["pixel_values"].shape == (3, 32, 32) and item["pixel_values"].dtype == torch.float32
    assert int((item["input_ids"] == processor.image_token_id).sum()) == N_IMG
    assert item["attention_mask"].tolist() == [1] * len(item["input_ids"])
    # LLaVA's rule: the <image> tag moves to the start of its turn.
    text = processor.tokenizer.decode(item["input_ids"])
    assert text.startswith("<|im_start|>user\n" + "<image>" * N_IMG + "\nWhat shape is in the image?<|im_end|>")
    assert _supervised(processor, item) == (
        "There is a red square in the middle of the image.<|im_end|>The background is white.<|im_end|>"
    )
    assert ds.lengths == [len(ds[i]["input_ids"]) for i in range(4)]


def test_data_types_from_type_key_and_from_file_names(processor, tmp_path):
    ds = LlavaDataset(MINI, IMAGES, processor, data_types=["conversation"])
    assert [s.record["id"] for s in ds.samples] == ["000000000001", "000000000004"]
    assert len(LlavaDataset(MINI, IMAGES, processor, data_types="detail")) == 1
    with pytest.raises(LntuneError, match="no sample of type 'detial'; types present: complex_reasoning, conversation, detail"):
        LlavaDataset(MINI, IMAGES, processor, data_types=["detial"])
    # Separate files (LLaVA-Instruct's own layout): the type is the file name without "_<N>k".
    records = json.loads(MINI.read_text())
    for rec in records:
        del rec["type"]
    (tmp_path / "conversation_58k.json").write_text(json.dumps(records[:2]))
    (tmp_path / "detail_23k.json").write_text(json.dumps(records[2:]))
    paths = [tmp_path / "conversation_58k.json", tmp_path / "detail_23k.json"]
    ds = LlavaDataset(paths, IMAGES, processor, data_types=["detail"])
    assert [s.record["id"] for s in ds.samples] == ["000000000003", "000000000004"]
    assert LlavaDataset(paths, IMAGES, processor).types == ["conversation", "conversation", "detail", "detail"]


def _ten(tmp_path, bad=()):
    write_images(tmp_path / "img")
    records = [sample(f"s{i}") for i in range(10)]
    for i in bad:
        records[i]["conversations"][1]["value"] = "  "
    return records, tmp_path / "img"


def test_seeded_subsampling(processor, tmp_path):
    records, images = _ten(tmp_path)

    def ids(**kw):
        return [s.record["id"] for s in LlavaDataset(records, images, processor, **kw).samples]

    # random.Random(0) shuffles range(10) to [7, 8, 1, 5, ...], Random(1) to [6, 8, 9, 7, ...]; file order is kept.
    assert ids(max_samples=3, seed=0) == ["s1", "s7", "s8"]
    assert ids(max_samples=3, seed=1) == ["s6", "s8", "s9"]
    assert ids(max_samples=3, seed=0) == ["s1", "s7", "s8"]
    assert ids(max_samples=50) == [f"s{i}" for i in range(10)]
    assert ids() == [f"s{i}" for i in range(10)]


def test_subsample_replaces_skipped_samples(processor, tmp_path, caplog):
    records, images = _ten(tmp_path, bad=[8])
    with caplog.at_level(logging.WARNING, logger="lntune.data"):
        ds = LlavaDataset(records, images, processor, max_samples=3, seed=0, on_bad_sample="skip")
    assert [s.record["id"] for s in ds.samples] == ["s1", "s5", "s7"]
    assert ds.stats["skipped"] == 1
    assert "skipping records: sample #8 (id s8): turn 1 (gpt) is empty" in caplog.text
    assert "skipped 1 bad samples of 10" in caplog.text


def test_bad_sample_is_an_error_naming_it_by_default(processor, tmp_path):
    records, images = _ten(tmp_path, bad=[4])
    with pytest.raises(LntuneError, match=r"^records: sample #4 \(id s4\): turn 1 \(gpt\) is empty$"):
        LlavaDataset(records, images, processor)
    with pytest.raises(LntuneError, match="on_bad_sample: expected 'error' or 'skip', got 'ignore'"):
        LlavaDataset(records, images, processor, on_bad_sample="ignore")


@pytest.mark.parametrize(
    "image, message",
    [
        ("/etc/passwd", "image path '/etc/passwd' is absolute"),
        ("../outside.png", r"image path '../outside.png' escapes the image folder \(\.\.\)"),
        ("link.png", "image path 'link.png' resolves outside the image folder"),
        ("nope.png", "missing image file 'nope.png'"),
        ("broken.png", "unreadable image 'broken.png'"),
    ],
)
def test_image_paths_stay_inside_the_folder(processor, tmp_path, image, message):
    images = write_images(tmp_path / "img")
    write_images(tmp_path, ["outside.png"])
    os.symlink(tmp_path / "outside.png", images / "link.png")
    (images / "broken.png").write_text("not a png")
    records = [sample("ok"), sample("bad", image=image)]
    with pytest.raises(LntuneError, match=rf"^records: sample #1 \(id bad\): {message}"):
        LlavaDataset(records, images, processor)
    assert len(LlavaDataset(records, images, processor, on_bad_sample="skip")) == 1


def test_symlink_inside_the_folder_is_fine(processor, tmp_path):
    images = write_images(tmp_path / "img")
    os.symlink(images / "a.png", images / "alias.png")
    assert len(LlavaDataset([sample("x", image="alias.png")], images, processor)) == 1


def test_decompression_bomb_guard_stays_on(processor, tmp_path, monkeypatch):
    from PIL import Image

    images = write_images(tmp_path / "img")  # 40x30 = 1200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # PIL refuses above 2x this
    with pytest.raises(LntuneError, match="unreadable image 'a.png': Image size .* decompression bomb"):
        LlavaDataset([sample("x")], images, processor)


def _long(tmp_path, answer_words=60):
    images = write_images(tmp_path / "img")
    answer = " ".join(["red square"] * (answer_words // 2)) + "."
    return [sample("long", turns=(("Describe it.", answer),))], images


def test_truncation_drop_and_text(processor, tmp_path):
    records, images = _long(tmp_path)
    full = LlavaDataset(records, images, processor)[0]
    n = len(full["input_ids"])
    dropped = LlavaDataset(records, images, processor, max_length=n - 5)
    assert len(dropped) == 0 and dropped.stats["dropped_too_long"] == 1
    cut = LlavaDataset(records, images, processor, max_length=n - 5, truncation="text")
    assert cut.stats["truncated"] == 1 and cut.lengths == [n - 5]
    item = cut[0]
    assert item["input_ids"].tolist() == full["input_ids"][: n - 5].tolist()
    assert item["labels"].tolist() == full["labels"][: n - 5].tolist()
    assert int((item["input_ids"] == processor.image_token_id).sum()) == N_IMG
    assert len(LlavaDataset(records, images, processor, max_length=n)) == 1


def test_truncation_never_cuts_image_tokens(processor, tmp_path):
    records, images = _long(tmp_path)
    # ChatML: "<|im_start|>", "user" (2 tokens of the tiny BPE), "\n", then the 16 image tokens at 4..19.
    ids = LlavaDataset(records, images, processor)[0]["input_ids"].tolist()
    assert [j for j, t in enumerate(ids) if t == processor.image_token_id] == list(range(4, 20))
    for max_length in (5, 19):
        ds = LlavaDataset(records, images, processor, max_length=max_length, truncation="text")
        assert len(ds) == 0 and ds.stats["dropped_too_long"] == 1
    # Images fit but nothing supervised is left: dropped too.
    ds = LlavaDataset(records, images, processor, max_length=20, truncation="text")
    assert len(ds) == 0 and ds.stats["dropped_too_long"] == 1


def test_text_only_samples_have_no_pixels(processor, tmp_path):
    ds = LlavaDataset([sample("t", image=None)], None, processor)
    item = ds[0]
    assert "pixel_values" not in item
    assert int((item["input_ids"] == processor.image_token_id).sum()) == 0
    with pytest.raises(LntuneError, match=r"sample #0 \(id i\): the sample has an image but no image folder"):
        LlavaDataset([sample("i")], None, processor)


def test_collator_pads_right_and_stacks_pixels():
    a = {"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([-100, 6, 7]),
         "attention_mask": torch.tensor([1, 1, 1]), "pixel_values": torch.zeros(3, 4, 4)}
    b = {"input_ids": torch.tensor([8]), "labels": torch.tensor([8]), "attention_mask": torch.tensor([1])}
    c = {"input_ids": torch.tensor([9, 9]), "labels": torch.tensor([-100, 9]),
         "attention_mask": torch.tensor([1, 1]), "pixel_values": torch.ones(3, 4, 4)}
    batch = LlavaCollator(pad_token_id=0)([a, b, c])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [9, 9, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100], [-100, 9, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["pixel_values"][1].sum() == 48
    assert LlavaCollator(0, pad_to_multiple_of=8)([a])["input_ids"].shape == (1, 8)
    with pytest.raises(LntuneError, match="no pad token"):
        LlavaCollator(None)


def test_batches_run_through_a_tiny_llava(processor):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(processor.tokenizer), hidden_size=16, intermediate_size=32,
                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2),
        image_token_id=processor.image_token_id,
    )
    model = LlavaForConditionalGeneration(config).eval()
    ds = LlavaDataset(MINI, IMAGES, processor)
    batch = LlavaCollator(processor.tokenizer.pad_token_id)([ds[i] for i in range(4)])
    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss)
