"""References from a run's lntune.json to what it was built on, written so that runs can move.

    from lntune.run_refs import path_ref, resolve_ref
    ref = path_ref("/data/runs/stage1", run_dir="/data/runs/stage2")   # {"relative": "../stage1", "absolute": ...}
    resolve_ref(ref, run_dir, "base run", source)                        # a Path that exists, or a clear error

A path inside the cache ($LNTUNE_HOME: world vision towers, converted LLMs) is stored by its cache key,
`{"home": "towers/<key>"}`, and found under whatever $LNTUNE_HOME is set where the run is loaded. Any
other path is stored relative to the run directory (so a run moved together with its base run still
loads) and absolute (so a run moved alone still finds a base that stayed). Runs written before this stored
plain absolute strings; those still load.
"""

from __future__ import annotations

import os
from pathlib import Path

from lntune.errors import LntuneError
from lntune.paths import lntune_home


def path_ref(path, run_dir=None) -> dict:
    """How lntune.json refers to `path`: a cache key under $LNTUNE_HOME, else relative + absolute."""
    path = Path(path).resolve()
    home = lntune_home().resolve()
    if path.is_relative_to(home):
        return {"home": path.relative_to(home).as_posix()}
    ref = {"absolute": str(path)}
    if run_dir is not None:
        ref["relative"] = Path(os.path.relpath(path, Path(run_dir).resolve())).as_posix()
    return ref


def resolve_ref(ref, run_dir, what: str, source, check=None) -> Path:
    """The existing path a reference names; LntuneError naming what is missing and where it was looked for.

    `check(path)`: None when an existing candidate is the right one, else why not (the base's weights were
    replaced, say); the first candidate that passes is returned, and when none does the first reason is raised."""
    if isinstance(ref, str):  # a plain path (older runs, or a base given in memory)
        path = Path(ref)
        candidates = [path if path.is_absolute() or run_dir is None else Path(run_dir) / path]
    elif isinstance(ref, dict) and "home" in ref:
        candidates = [lntune_home() / ref["home"]]
    elif isinstance(ref, dict) and ("relative" in ref or "absolute" in ref):
        candidates = ([Path(run_dir) / ref["relative"]] if "relative" in ref and run_dir is not None else []) + \
                     ([Path(ref["absolute"])] if "absolute" in ref else [])
    else:
        raise LntuneError(f"{source}: the {what} reference {ref!r} is not a path, "
                          "{'home': ...} or {'relative'/'absolute': ...}")
    reasons = []
    for candidate in candidates:
        if candidate.exists():
            reason = check(candidate) if check is not None else None
            if reason is None:
                return candidate
            reasons.append(reason)
    if reasons:
        raise LntuneError(f"{source}: {reasons[0]}; put the original back, or train this run again on the new one")
    if isinstance(ref, dict) and "home" in ref:
        raise LntuneError(f"{source}: the {what} {ref['home']!r} is not in $LNTUNE_HOME ({lntune_home()}); copy that "
                          f"cache entry there or point LNTUNE_HOME at the cache that holds it")
    looked = " or ".join(str(c) for c in candidates)
    raise LntuneError(f"{source}: the {what} is missing (looked for {looked}); move it back, or move it along with the run")
