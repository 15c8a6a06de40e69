"""The paper's numbers, read from the data files in lntune/paper/*.yaml (never typed into code or prose).

    from lntune.reproduce.paper_values import load_table, claims
    load_table("table1")["backbones"]["MM-Vicuna-7B"]["layernorm"]["flickr30k"]   # 48.01
    [c["id"] for c in claims()]

Every table file has `columns` and rows given as lists, one value per column; `load_table` turns each row into
a {column: value} dict and checks its length and value types, naming the file and the row on a mismatch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from lntune.errors import LntuneError

PAPER_DIR = Path(__file__).resolve().parent.parent / "paper"
TABLES = ("table1", "table2", "table3", "table4", "table5", "table6", "tableA1")
# Table 2 prints "OOM" where a run did not fit on the 80 GB card.
OOM = "OOM"


def _read(name: str) -> dict:
    path = PAPER_DIR / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LntuneError(f"{path}: paper data file not found (is lntune installed with its package data?)") from None
    if not isinstance(data, dict):
        raise LntuneError(f"{path}: expected a mapping at the top level")
    return data


def _row(path, where: str, columns: list[str], values, allow_oom: bool = False) -> dict:
    if not isinstance(values, list) or len(values) != len(columns):
        raise LntuneError(f"{path}: {where}: expected {len(columns)} values ({', '.join(columns)}), got {values!r}")
    for column, value in zip(columns, values):
        ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
            (allow_oom and value == OOM)
        if not ok:
            raise LntuneError(f"{path}: {where}: {column} = {value!r} is not a number")
    return dict(zip(columns, (float(v) if isinstance(v, (int, float)) else v for v in values)))


@lru_cache(maxsize=None)
def load_table(name: str) -> dict:
    """A paper table as dicts: {"title", "columns", and "backbones": {backbone: {row: {column: value}}}
    and/or "rows": {row: {column: value}} and/or "baselines"}; Table A1 keeps its own layout."""
    if name not in TABLES:
        raise LntuneError(f"unknown paper table {name!r}; tables: {', '.join(TABLES)}")
    data = _read(name)
    path = PAPER_DIR / f"{name}.yaml"
    if name == "tableA1":
        for i, row in enumerate(data.get("rows") or []):
            if len(row.get("lrs", [])) != len(row.get("flickr30k", [])):
                raise LntuneError(f"{path}: rows[{i}]: lrs and flickr30k differ in length")
        return data
    columns = data.get("columns")
    if not columns:
        raise LntuneError(f"{path}: missing `columns`")
    out = {"title": data.get("title", ""), "columns": list(columns)}
    for section in ("rows", "baselines"):
        if section in data:
            out[section] = {key: _row(path, f"{section}.{key}", columns, values, allow_oom=name == "table2")
                            for key, values in data[section].items()}
    if "backbones" in data:
        out["backbones"] = {
            backbone: {key: _row(path, f"backbones.{backbone}.{key}", columns, values) for key, values in rows.items()}
            for backbone, rows in data["backbones"].items()}
    if "params_decimals" in data:
        out["params_decimals"] = dict(data["params_decimals"])
    return out


@lru_cache(maxsize=None)
def figures() -> dict:
    """{figure: {"content", "numbers" (dict or None), "note"}} from figures.yaml."""
    return dict(_read("figures")["figures"])


@lru_cache(maxsize=None)
def claims_by_id() -> dict:
    path = PAPER_DIR / "claims.yaml"
    out = {}
    for i, claim in enumerate(_read("claims").get("claims") or []):
        missing = [k for k in ("id", "source", "statement") if k not in claim]
        if missing:
            raise LntuneError(f"{path}: claims[{i}]: missing key {missing[0]!r}")
        if claim["id"] in out:
            raise LntuneError(f"{path}: claims[{i}]: duplicate id {claim['id']!r}")
        out[claim["id"]] = {**claim, "text_numbers": dict(claim.get("text_numbers") or {})}
    return out


def claims() -> list[dict]:
    """The claims in file order: [{"id", "source", "statement", "text_numbers"}]."""
    return list(claims_by_id().values())
