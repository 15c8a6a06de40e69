"""Reading JSON and JSON-lines files with errors that name the file, line and column.

Shared by the scorers, the data pipeline and the analyses: a missing file, non-UTF-8 text or malformed
JSON becomes one LntuneError like `preds.jsonl:12:5: malformed JSON in POPE predictions: Expecting value`.
Writing: `dumps_strict` never emits the bare `NaN`/`Infinity` that Python's json allows (null instead).
"""

import json
import math
import sys
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


def required(row: dict, key: str, at: str):
    """row[key] of a prediction; LntuneError naming `at` (file:line) when the field is missing or null."""
    if row.get(key) is None:
        raise LntuneError(f"{at}: prediction has {'a null' if key in row else 'no'} '{key}'")
    return row[key]


def item_where(row, index: int, source) -> str:
    """'FILE:LINE' / 'FILE (item N)' for a record read by load_records, else 'SOURCE item N'."""
    return where(row, source) if isinstance(row, dict) and "_line" in row else f"{source} item {index}"


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
    except PermissionError:
        raise LntuneError(f"{path}: permission denied (expected {what})") from None
    except UnicodeDecodeError as err:
        raise LntuneError(f"{path}: not UTF-8 text (byte {err.start}); expected {what}") from None


def parse_json(text: str, path: Path, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LntuneError(f"{path}:{err.lineno}:{err.colno}: malformed JSON in {what}: {err.msg}") from None
    except RecursionError:
        raise LntuneError(f"{path}: JSON nested too deeply to be {what}") from None


def parse_lines(text: str, path: Path, what: str, tag_lines: bool = True) -> list:
    rows = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise LntuneError(f"{path}:{lineno}:{err.colno}: malformed JSON in {what}: {err.msg}") from None
        except RecursionError:
            raise LntuneError(f"{path}:{lineno}: JSON nested too deeply to be {what}") from None
        if not isinstance(row, dict):
            raise LntuneError(f"{path}:{lineno}: expected one JSON object per line in {what}")
        if tag_lines:
            row["_line"] = lineno
        rows.append(row)
    return rows


def finite_or_null(data, path: str = ""):
    """`data` with every NaN/infinite float replaced by None; returns (clean data, dotted keys replaced)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None, [path or "value"]
    if isinstance(data, dict):
        pairs = [(k, finite_or_null(v, f"{path}.{k}" if path else str(k))) for k, v in data.items()]
        return {k: v for k, (v, _) in pairs}, [key for _, (_, keys) in pairs for key in keys]
    if isinstance(data, (list, tuple)):
        items = [finite_or_null(v, f"{path}[{i}]") for i, v in enumerate(data)]
        return [v for v, _ in items], [key for _, keys in items for key in keys]
    return data, []


def dumps_strict(data, where, **kwargs) -> str:
    """JSON text that any parser reads: non-finite numbers become null, with a warning naming them and `where`."""
    clean, replaced = finite_or_null(data)
    if replaced:
        print(f"lntune: warning: {where}: non-finite {', '.join(replaced[:5])} written as null", file=sys.stderr)
    return json.dumps(clean, allow_nan=False, **kwargs)
