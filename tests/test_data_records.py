"""LLaVA JSON loading (list or JSON lines, errors with line/column), data types and the record checks."""

import json

import pytest

from lntune.data.records import load_records, source_type, structure_problems, to_messages
from lntune.errors import LntuneError


def test_load_list_and_json_lines(tmp_path):
    records = [{"id": "a", "conversations": []}, {"id": "b", "conversations": []}]
    (tmp_path / "list.json").write_text(json.dumps(records, indent=1))
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in records))
    for name in ("list.json", "lines.jsonl", "lines.json"):
        assert load_records(tmp_path / name) == records


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(LntuneError, match=f"^{tmp_path / 'none.json'}: file not found \\(expected a LLaVA JSON file\\)$"):
        load_records(tmp_path / "none.json")
    with pytest.raises(LntuneError, match=r"is a folder \(expected a LLaVA JSON file\)"):
        load_records(tmp_path)
    (tmp_path / "obj.json").write_text('{\n"id": 1\n}')
    with pytest.raises(LntuneError, match="expected a JSON list of samples, found a dict"):
        load_records(tmp_path / "obj.json")
    (tmp_path / "bad.json").write_text('[{"id": 1},\n {"id": 2]\n')
    with pytest.raises(LntuneError, match=r"bad\.json:2:10: malformed JSON in a LLaVA JSON file: Expecting ',' delimiter"):
        load_records(tmp_path / "bad.json")
    (tmp_path / "latin.json").write_bytes(b'[{"id": "\xe9"}]')
    with pytest.raises(LntuneError, match="not UTF-8 text"):
        load_records(tmp_path / "latin.json")


@pytest.mark.parametrize(
    "name, kind",
    [("conversation_58k.json", "conversation"), ("detail_23k.json", "detail"),
     ("complex_reasoning_77k.json", "complex_reasoning"), ("llava_instruct_80k.json", "llava_instruct"),
     ("pretrain.json", "pretrain"), (None, "untyped")],
)
def test_type_from_file_name(name, kind):
    assert source_type(name) == kind


def test_image_tag_moves_to_the_start_and_roles_map():
    record = {"image": "a.png", "conversations": [
        {"from": "human", "value": "What is it?\n<image>"}, {"from": "gpt", "value": "A cat."},
        {"from": "human", "value": "Sure?"}, {"from": "gpt", "value": "Yes."}]}
    assert structure_problems(record) == []
    assert to_messages(record) == [
        {"role": "user", "content": "<image>\nWhat is it?"}, {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Yes."}]


def test_structure_problems():
    ok = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]
    assert structure_problems({"conversations": [{"from": "system", "value": "Be kind."}] + ok}) == []
    assert structure_problems({"conversations": []}) == [
        '"conversations" must be a non-empty list of {"from", "value"} turns']
    assert structure_problems({"conversations": ok + [{"from": "system", "value": "x"}, ok[1]]}) == [
        "roles out of order: a system turn may only come first (turn 2)"]
    assert structure_problems({"conversations": [ok[0], {"from": "gpt"}]}) == [
        'turn 1 must be an object with "from" and "value"']
    assert structure_problems({"conversations": [ok[0], {"from": "gpt", "value": 3}]}) == [
        'turn 1 "value" must be a string']
    assert structure_problems({"image": ["a.png"], "conversations": ok}) == [
        '"image" must be a non-empty string (a path relative to the image folder)']
    assert structure_problems({"type": 3, "conversations": ok}) == ['"type" must be a non-empty string']
    assert structure_problems({"conversations": [ok[0], {"from": "gpt", "value": "<image> x"}]}) == [
        "<image> tag in a non-human turn (turn 1)"]
