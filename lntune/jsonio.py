"""Reading JSON and JSON-lines files with errors that name the file, line and column.

Shared by the scorers, the data pipeline and the analyses: a missing file, non-UTF-8 text or malformed
JSON becomes one LntuneError like `preds.jsonl:12:5: malformed JSON in POPE predictions: Expecting value`.
"""

import json
from pathlib import Path

from lntune.errors import LntuneError


def load_json(path, what: str):
    """Parse one JSON document; `what` says what the file should hold (used in error messages)."""
    path = Path(path)
    return parse_json(read_text(path, what), path, what)


def load_jsonl(path, what: str, tag_lines: bool = True) -> list:
    """Parse a JSON-lines file (blank lines skipped); with `tag_lines` each record gets its line number in `_line`."""
    path = Path(path)
    return parse_lines(read_text(path, what), path, what, tag_lines)


def load_records(path, what: str) -> list:
    """Records from either a JSON array or a JSON-lines file (told apart by the first character)."""
    path = Path(path)
    text = read_text(path, what)
    if not text.lstrip().startswith("["):
        return parse_lines(text, path, what)
    data = parse_json(text, path, what)
    for i, row in enumerate(data):
        if isinstance(row, dict):
            row["_line"] = f"item {i}"
    return data


def where(row, source) -> str:
    """'FILE:LINE' (or 'FILE (item N)', or 'predictions item N') for messages about one record."""
    line = row.get("_line") if isinstance(row, dict) else None
    if isinstance(line, int):
        return f"{source}:{line}"
    if line is not None:
        return f"{source} ({line})"
    return str(source)


def first_few(ids, n: int = 5) -> str:
    """'a, b, c, ...' for error messages about many ids."""
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:n])
    return shown + (", ..." if len(ids) > n else "")


def read_text(path: Path, what: str) -> str:
    if path.is_dir():
        raise LntuneError(f"{path}: is a folder (expected {what})")
    if not path.is_file():
        raise LntuneError(f"{path}: file not found (expected {what})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise LntuneError(f"{path}: not UTF-8 text (byte {err.start}); expected {what}") from None


def parse_json(text: str, path: Path, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LntuneError(f"{path}:{err.lineno}:{err.colno}: malformed JSON in {what}: {err.msg}") from None


def parse_lines(text: str, path: Path, what: str, tag_lines: bool = True) -> list:
    rows = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise LntuneError(f"{path}:{lineno}:{err.colno}: malformed JSON in {what}: {err.msg}") from None
        if not isinstance(row, dict):
            raise LntuneError(f"{path}:{lineno}: expected one JSON object per line in {what}")
        if tag_lines:
            row["_line"] = lineno
        rows.append(row)
    return rows
