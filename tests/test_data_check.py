"""`check_dataset` and `lntune data check`: every problem is one line naming the sample; exit status 1."""

import json
import os
from pathlib import Path

import pytest
from test_data_support import sample, tiny_processor, write_images

from lntune.cli import main
from lntune.data.check import check_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "data"
MINI = FIXTURES / "llava_mini.json"
IMAGES = FIXTURES / "images"


def _bad_file(tmp_path):
    images = write_images(tmp_path / "img")
    write_images(tmp_path, ["outside.png"])
    os.symlink(tmp_path / "outside.png", images / "link.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    gpt_first = sample("gpt-first")
    gpt_first["conversations"].reverse()
    human_last = sample("human-last")
    human_last["conversations"].append({"from": "human", "value": "And?"})
    unknown_role = sample("unknown-role")
    unknown_role["conversations"][1]["from"] = "bot"
    no_id = sample(None)
    del no_id["id"]
    no_id["conversations"][1]["value"] = ""
    records = [
        sample("ok", type="conversation"),
        sample("missing", image="nope.png"),
        sample("broken", image="broken.png"),
        sample("absolute", image="/etc/hosts"),
        sample("dots", image="../outside.png"),
        sample("link", image="link.png"),
        {"id": "no-tag", "image": "a.png", "conversations": [{"from": "human", "value": "What?"},
                                                             {"from": "gpt", "value": "A square."}]},
        sample("two-tags", turns=(("<image> What?", "A square."),)),
        {"id": "tag-no-image", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                 {"from": "gpt", "value": "A square."}]},
        gpt_first,
        human_last,
        sample("empty-human", turns=(("What?", "A square."), ("   ", "Yes."))),
        unknown_role,
        no_id,
        "just a string",
        sample("text-only", image=None, type="conversation"),
    ]
    path = tmp_path / "bad_12k.json"
    path.write_text(json.dumps(records))
    return path, images


def test_every_problem_is_named(tmp_path):
    path, images = _bad_file(tmp_path)
    report = check_dataset(path, images)
    p = f"{path}: sample"
    expected = [
        f"{p} #1 (id missing): missing image file 'nope.png' (looked in {images})",
        f"{p} #2 (id broken): unreadable image 'broken.png'",
        f"{p} #3 (id absolute): image path '/etc/hosts' is absolute; paths must be relative to the image folder",
        f"{p} #4 (id dots): image path '../outside.png' escapes the image folder (..)",
        f"{p} #5 (id link): image path 'link.png' resolves outside the image folder",
        f"{p} #6 (id no-tag): missing <image> tag: the sample has an image but no human turn has <image>",
        f"{p} #7 (id two-tags): 2 <image> tags for one image",
        f"{p} #8 (id tag-no-image): <image> tag but no \"image\" in the sample",
        f"{p} #9 (id gpt-first): roles out of order: turn 0 is gpt, expected human",
        f"{p} #10 (id human-last): roles out of order: the last turn is human, expected a gpt answer after it",
        f"{p} #11 (id empty-human): turn 2 (human) is empty",
        f"{p} #12 (id unknown-role): turn 1 has unknown role 'bot' (expected human or gpt)",
        f"{p} #13: turn 1 (gpt) is empty",
        f"{p} #14: not a JSON object but a str",
    ]
    assert len(report.problems) == len(expected)
    for line, want in zip(report.problems, expected):
        assert line.startswith(want), (line, want)
    assert not report.ok
    assert report.samples == 16 and report.with_image == 13 and report.text_only == 2
    # "type" keys win; the rest take the file name without "_12k".
    assert report.type_counts == {"conversation": 2, "bad": 14}


def test_cli_exit_status_and_one_line_per_problem(tmp_path, capsys):
    path, images = _bad_file(tmp_path)
    assert main(["data", "check", "--data", str(path), "--images", str(images)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith(f"{path}: sample #") for line in out) == 14
    assert out[-1] == "14 problem(s) found"
    assert main(["data", "check", "--data", str(MINI), "--images", str(IMAGES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{MINI}: 4 samples (complex_reasoning 1, conversation 2, detail 1); 4 with an image, 0 text-only"
    assert out[-1] == "OK"


def test_malformed_json_line_and_column(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"id": "a"}\n {"id": "b"}\n]\n')
    assert main(["data", "check", "--data", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:3:2: malformed JSON in a LLaVA JSON file: Expecting ',' delimiter" in out
    lines = tmp_path / "broken.jsonl"
    lines.write_text('{"id": "a"}\n{"id": "b",}\n')
    report = check_dataset(lines)
    assert report.problems == [f"{lines}:2:12: malformed JSON in a LLaVA JSON-lines file: Expecting property name enclosed in double quotes"]


def test_character_and_word_statistics():
    report = check_dataset(MINI, IMAGES)
    records = json.loads(MINI.read_text())
    chars = sorted(sum(len(t["value"]) for t in r["conversations"]) for r in records)
    assert report.length_stats["characters"]["min"] == chars[0] == 53
    assert report.length_stats["characters"]["max"] == chars[-1]
    assert report.length_stats["characters"]["mean"] == pytest.approx(sum(chars) / 4)
    assert report.length_stats["words"]["max"] == 27  # the <image> tag counts as a word
    assert report.notes == [] and report.ok


def test_token_statistics_match_the_dataset():
    from lntune.data.dataset import LlavaDataset

    processor = tiny_processor("chatml")
    report = check_dataset(MINI, IMAGES, tokenizer=processor, max_length=70)
    lengths = LlavaDataset(MINI, IMAGES, processor).lengths
    stats = report.length_stats["tokens"]
    assert (stats["min"], stats["max"]) == (min(lengths), max(lengths))
    assert report.over_max_length == sum(n > 70 for n in lengths) > 0


def test_masking_problems_are_reported_per_sample():
    processor = tiny_processor("chatml")
    processor.tokenizer.chat_template = processor.tokenizer.chat_template.replace("m['content']", "(m['content'] | upper)")
    report = check_dataset(MINI, IMAGES, tokenizer=processor)
    assert report.problems[0] == (
        f"{MINI}: sample #0 (id 000000000001): the text of assistant turn 1 does not appear in the rendered conversation"
    )
    assert len(report.problems) == 4


def test_cli_with_model_dir(tmp_path, capsys):
    processor = tiny_processor("chatml")
    processor.save_pretrained(tmp_path / "model")
    assert main(["data", "check", "--data", str(MINI), "--images", str(IMAGES), "--model", str(tmp_path / "model"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    lengths = report["length_stats"]["tokens"]
    assert report["ok"] and report["length_unit"] == "tokens" and lengths["min"] > 16


def test_missing_image_folder_and_no_folder(tmp_path):
    report = check_dataset(MINI, tmp_path / "nowhere")
    assert report.problems == [f"{tmp_path / 'nowhere'}: image folder not found"]
    report = check_dataset(MINI)
    assert report.ok and report.notes == ["image files not checked (no image folder given)"]


@pytest.mark.parametrize("text", ["[]", "[\n]\n"])
def test_an_empty_dataset_is_a_problem_in_both_outputs(tmp_path, capsys, text):
    from lntune.cli import main

    path = tmp_path / "empty.json"
    path.write_text(text)
    assert main(["data", "check", "--data", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: no samples (the file holds no records); nothing to train on" in out and "OK" not in out
    assert main(["data", "check", "--data", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["samples"] == 0 and len(report["problems"]) == 1
