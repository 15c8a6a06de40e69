"""Which folders lntune may write into, and what it may delete there.

    from lntune.ownership import claim_folder, mark_folder, refuse_overlap
    refuse_overlap(out, {"the model": model_dir, "the data root": data_root})   # --out is none of them, nor above one
    claim_folder(out, "export")           # new, empty, or lntune's own export: else one line naming the folder
    mark_folder(out, "export", files)     # `.lntune-output.json`: {"kind": "export", "files": [...]}

A command that writes a folder (export, eval, train, reproduce, world generate) writes only into a folder
that is new, empty, or carries lntune's marker of the same kind. A folder written by a version of lntune
from before the marker is recognised by the files that kind always writes (`legacy`). The marker of an
export also lists the files written, so that replacing an export deletes nothing lntune did not write.
"""

from __future__ import annotations

import json
from pathlib import Path

from lntune.errors import LntuneError
from lntune.jsonio import first_few
from lntune.locks import replace_folder, write_text_atomic

MARKER = ".lntune-output.json"
_IGNORED = {MARKER, ".lntune.lock"}  # lntune's own bookkeeping: not content


def read_marker(folder: Path) -> dict | None:
    """The marker of `folder` ({"kind", "files"}), None when it has none; a damaged marker counts as none."""
    path = Path(folder) / MARKER
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("kind"), str) else None


def mark_folder(folder: Path, kind: str, files: list[str] | None = None) -> None:
    """Mark `folder` as lntune's output of `kind` (and the files it holds, when given)."""
    record = {"kind": kind, **({"files": sorted(files)} if files is not None else {})}
    write_text_atomic(Path(folder) / MARKER, json.dumps(record, indent=1) + "\n")


def foreign_entries(folder: Path, kind: str, legacy: tuple[str, ...] = ()) -> list[str]:
    """The names in `folder` that show it is not lntune's output of `kind` ([] when lntune may write it)."""
    folder = Path(folder)
    if not folder.exists():
        return []
    if not folder.is_dir():
        return [folder.name]
    entries = sorted(p.name for p in folder.iterdir() if p.name not in _IGNORED)
    marker = read_marker(folder)
    if marker is not None:
        if marker["kind"] != kind:
            return [MARKER]
        listed = marker.get("files")
        return [] if listed is None else [name for name in entries if name not in listed]
    if not entries or any((folder / name).exists() for name in legacy):
        return []
    return entries


def claim_folder(folder, kind: str, legacy: tuple[str, ...] = (), option: str = "--out") -> Path:
    """`folder`, once it is known to be new, empty or lntune's own `kind` of output; LntuneError naming it otherwise."""
    folder = Path(folder)
    resolved = folder.resolve()
    if resolved.parent == resolved or resolved == Path.home().resolve():
        where = "the filesystem root" if resolved.parent == resolved else "the home folder"
        raise LntuneError(f"{folder}: is {where}; choose a folder of its own for the {kind} ({option})")
    foreign = foreign_entries(folder, kind, legacy)
    if not foreign:
        return folder
    if not folder.is_dir():
        raise LntuneError(f"{folder}: is a file, not a folder; choose another {option}")
    marker = read_marker(folder)
    if marker is not None and marker["kind"] != kind:
        raise LntuneError(f"{folder}: holds lntune's {marker['kind']}, not its {kind}; choose another {option}")
    raise LntuneError(f"{folder}: holds files lntune did not write there ({first_few(foreign, 3)}); lntune writes its "
                      f"{kind} only into a new or empty folder or its own: choose another {option}")


def refuse_overlap(out, inputs: dict, option: str = "--out") -> None:
    """LntuneError when `out` is one of `inputs` ({what: path}, None skipped) or a folder above one of them."""
    out_resolved = Path(out).resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        path = Path(path).resolve()
        if path == out_resolved or path.is_relative_to(out_resolved):
            where = "is" if path == out_resolved else "holds"
            raise LntuneError(f"{out}: {option} {where} {what} ({path}); writing there could delete it: "
                              f"choose another {option}")


def base_chain(model_dir) -> list[Path]:
    """The base runs and models below an lntune run (its base, the base's base, ...) that can be found."""
    from lntune.run_dir import RunDir

    chain, current = [], Path(model_dir)
    while RunDir(current).is_run and len(chain) < 16:
        try:
            base = json.loads(RunDir(current).run_file.read_text(encoding="utf-8")).get("base", {})
        except (OSError, ValueError, AttributeError):
            break
        if not isinstance(base, dict) or base.get("kind") not in ("run", "hf") or not base.get("path"):
            break
        from lntune.run_refs import resolve_ref

        try:
            current = resolve_ref(base["path"], current, "base", RunDir(current).run_file)
        except LntuneError:
            break
        chain.append(current)
    return chain


def model_inputs(model_dir) -> dict:
    """{what: path} of a model and the bases it is built on, for `refuse_overlap`."""
    inputs = {"the model": model_dir}
    for depth, base in enumerate(base_chain(model_dir)):
        inputs[f"the model's base{' (' + str(depth + 1) + ' levels down)' if depth else ''}"] = base
    return inputs


def replace_owned_folder(out, kind: str, write) -> Path:
    """`locks.replace_folder(out, write)`, the new folder marked as lntune's `kind` listing the files written."""
    def write_marked(tmp: Path):
        write(tmp)
        mark_folder(tmp, kind, [p.name for p in tmp.iterdir() if p.name not in _IGNORED])

    return replace_folder(Path(out), write_marked)
