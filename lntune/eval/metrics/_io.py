"""Reading benchmark files for the scorers, with errors that name the file, line and column.

Internal helper of lntune/eval/metrics/; the scorers accept either a path or already-loaded Python
objects, and go through these functions only when given a path.
"""

import json
from pathlib import Path

from lntune.errors import LntuneError


def load_json(path, what: str):
    """Parse one JSON document; `what` says what the file should hold (used in error messages)."""
    path = Path(path)
    return _parse(_read_text(path, what), path, what)


def load_jsonl(path, what: str) -> list:
    """Parse a JSON-lines file (blank lines skipped); each record gets its 1-based line number in `_line`."""
    path = Path(path)
    return _parse_lines(_read_text(path, what), path, what)


def load_records(path, what: str) -> list:
    """Records from either a JSON array or a JSON-lines file (told apart by the first character)."""
    path = Path(path)
    text = _read_text(path, what)
    if not text.lstrip().startswith("["):
        return _parse_lines(text, path, what)
    data = _parse(text, path, what)
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


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise LntuneError(f"{path}: file not found (expected {what})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise LntuneError(f"{path}: not UTF-8 text (byte {err.start}); expected {what}") from None


def _parse(text: str, path: Path, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LntuneError(f"{path}:{err.lineno}:{err.colno}: malformed JSON in {what}: {err.msg}") from None


def _parse_lines(text: str, path: Path, what: str) -> list:
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
        row["_line"] = lineno
        rows.append(row)
    return rows
