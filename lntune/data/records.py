"""LLaVA JSON records: load a file (line/column on malformed JSON), name, type and check each sample.

A LLaVA data file is a JSON list (or JSON lines, one object per line) of
`{"id", "image": <path relative to the image folder>, "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "..."}, ...], "type"?: "conversation"}`.

Data types (for `data_types: [conversation]`): a record's type is its `"type"` key when present (a mixed
file such as the synthetic world's instruct/mixed.json), else the name of the file it came from with a
trailing `_<N>k` removed, so LLaVA-Instruct's conversation_58k.json, detail_23k.json and
complex_reasoning_77k.json give "conversation", "detail" and "complex_reasoning".

    python -c "from lntune.data.records import load_records; print(len(load_records('data.json')))"
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lntune.errors import LntuneError
from lntune.jsonio import parse_json, parse_lines, read_text

IMAGE_TAG = "<image>"
INSTRUCT_TYPES = ("conversation", "detail", "complex_reasoning")  # LLaVA-Instruct's data types, in the paper's order
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def load_records(path: str | Path) -> list:
    """The records of a LLaVA JSON (list) or JSON-lines file; malformed JSON raises naming FILE:LINE:COL."""
    path = Path(path)
    text = read_text(path, "a LLaVA JSON file")
    if path.suffix == ".jsonl" or (text.lstrip().startswith("{") and _looks_like_json_lines(text)):
        return parse_lines(text, path, "a LLaVA JSON-lines file", tag_lines=False)
    data = parse_json(text, path, "a LLaVA JSON file")
    if not isinstance(data, list):
        raise LntuneError(f"{path}: expected a JSON list of samples, found a {type(data).__name__}")
    return data


def _looks_like_json_lines(text: str) -> bool:
    # A JSON-lines file has a complete object on its first line.
    first = text.lstrip().split("\n", 1)[0]
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def source_type(path: str | Path | None) -> str:
    """The data type of records without a "type" key, from their file name (conversation_58k.json -> conversation)."""
    if path is None:
        return "untyped"
    return re.sub(r"_\d+k$", "", Path(path).stem)


def record_type(record, default: str) -> str:
    value = record.get("type") if isinstance(record, dict) else None
    return value if isinstance(value, str) and value else default


def sample_name(record, index: int) -> str:
    """How errors name a sample: its id when it has one, and always its index in the file."""
    sid = record.get("id") if isinstance(record, dict) else None
    return f"sample #{index} (id {sid})" if sid is not None else f"sample #{index}"


def structure_problems(record) -> list[str]:
    """What is wrong with a record's shape, roles, turns and `<image>` tags (no file access); [] when fine."""
    if not isinstance(record, dict):
        return [f"not a JSON object but a {type(record).__name__}"]
    problems = []
    if "type" in record and not (isinstance(record["type"], str) and record["type"]):
        problems.append('"type" must be a non-empty string')
    image = record.get("image")
    if image is not None and not (isinstance(image, str) and image.strip()):
        problems.append('"image" must be a non-empty string (a path relative to the image folder)')
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return problems + ['"conversations" must be a non-empty list of {"from", "value"} turns']
    roles = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            problems.append(f'turn {i} must be an object with "from" and "value"')
            roles.append(None)
            continue
        role = ROLES.get(turn["from"])
        if role is None:
            problems.append(f"turn {i} has unknown role {turn['from']!r} (expected human or gpt)")
        roles.append(role)
        if not isinstance(turn["value"], str):
            problems.append(f'turn {i} "value" must be a string')
        elif not turn["value"].strip():
            problems.append(f"turn {i} ({turn['from']}) is empty")
    if None not in roles:
        problems += _role_order_problems(roles)
    if not problems:
        problems += _image_tag_problems(record, turns, roles)
    return problems


def _role_order_problems(roles: list[str]) -> list[str]:
    body = roles[1:] if roles[0] == "system" else roles
    if "system" in body:
        return [f"roles out of order: a system turn may only come first (turn {roles.index('system', 1)})"]
    if not body:
        return ["roles out of order: no human/gpt turns after the system turn"]
    offset = len(roles) - len(body)
    for i, role in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            names = {"user": "human", "assistant": "gpt"}
            return [f"roles out of order: turn {i + offset} is {names[role]}, expected {names[expected]}"]
    if body[-1] != "assistant":
        return ["roles out of order: the last turn is human, expected a gpt answer after it"]
    return []


def _image_tag_problems(record: dict, turns: list, roles: list[str]) -> list[str]:
    problems = []
    in_human = sum(t["value"].count(IMAGE_TAG) for t, r in zip(turns, roles) if r == "user")
    in_other = [i for i, (t, r) in enumerate(zip(turns, roles)) if r != "user" and IMAGE_TAG in t["value"]]
    if in_other:
        problems.append(f"<image> tag in a non-human turn (turn {in_other[0]})")
    if record.get("image") is not None:
        if in_human == 0:
            problems.append("missing <image> tag: the sample has an image but no human turn has <image>")
        elif in_human > 1:
            problems.append(f"{in_human} <image> tags for one image")
    elif in_human:
        problems.append("<image> tag but no \"image\" in the sample")
    return problems


def to_messages(record: dict) -> list[dict]:
    """A checked record's turns as chat messages, the `<image>` tag moved to the start of its turn (LLaVA's rule)."""
    messages = []
    for turn in record["conversations"]:
        content = turn["value"]
        if IMAGE_TAG in content:
            content = IMAGE_TAG + "\n" + content.replace(IMAGE_TAG, "").strip()
        messages.append({"role": ROLES[turn["from"]], "content": content})
    return messages
