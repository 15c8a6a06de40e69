"""Checkpoints that lose nothing, and the final trainable-only result.

    output_dir/checkpoint-<step>/   trainable.safetensors, optimizer.pt, scheduler.pt, rng.pt, state.json
    output_dir/trainable.safetensors + output_dir/lntune.json      the result (only what trained)

Every folder is written under a per-process temporary name and renamed (atomic); the newest `keep` are kept.
Trainable tensors are checked finite before anything is written (lntune/train/finite.py), and a checkpoint
holding non-finite values (written by an older version) is refused on resume.
Tensors go through safetensors; optimizer/scheduler/RNG state through torch.save and are read back with
`torch.load(weights_only=True)` (never unpickling arbitrary objects). Python's and NumPy's RNG states go
to JSON.
"""

import contextlib
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from lntune.errors import LntuneError
from lntune.jsonio import load_json
from lntune.locks import replace_file, replace_folder, write_text_atomic
from lntune.model.load import load_trainable, read_tensors
from lntune.run_dir import CHECKPOINT_PREFIX, RUN_FILE, TRAINABLE_FILE, RunDir

_CHECKPOINT = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


def trainable_state(model) -> dict:
    """The trainable tensors by parameter name (a tied tensor once, under its first name), on CPU."""
    return {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(output_dir: Path, step: int, model, optimizer, scheduler, state: dict, keep: int,
                    tensors: dict | None = None, optimizer_state: dict | None = None, also_write=None) -> Path:
    """Write checkpoint-<step> atomically and prune all but the newest `keep`.

    `tensors` / `optimizer_state`: already gathered from sharded processes (lntune/train/distributed_state.py);
    by default they are read from `model` and `optimizer`. `also_write(folder)` adds more to the folder before it
    is put in place (a DeepSpeed engine's state: lntune/train/deepspeed_run.py)."""
    from lntune.train.finite import require_finite

    tensors = trainable_state(model) if tensors is None else tensors
    require_finite(tensors, RunDir(output_dir).checkpoint(step))  # before anything is written or rotated away

    def write(folder: Path):
        save_file(tensors, str(folder / TRAINABLE_FILE))
        torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, folder / "optimizer.pt")
        torch.save(scheduler.state_dict(), folder / "scheduler.pt")
        torch.save({"torch": torch.get_rng_state()}, folder / "rng.pt")
        rng = {"python": _jsonable(random.getstate()), "numpy": _jsonable(np.random.get_state())}
        (folder / "state.json").write_text(json.dumps({**state, "rng": rng}, indent=1))
        if also_write is not None:
            also_write(folder)

    path = replace_folder(RunDir(output_dir).checkpoint(step), write, make=True)
    for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return path


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (temporary folders excluded), oldest first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def load_checkpoint(folder: Path, model, optimizer, scheduler, load_optimizer=None) -> dict:
    """Restore weights, optimizer, scheduler and RNG states; returns the saved loop state.

    load_optimizer(optimizer, state, source) replaces the plain load_state_dict (a sharded optimizer
    puts each process's share in place)."""
    from lntune.train.finite import nonfinite_names

    tensors = read_tensors(folder / TRAINABLE_FILE)
    if bad := nonfinite_names(tensors):
        raise LntuneError(f"{folder / TRAINABLE_FILE}: holds NaN or infinite values (e.g. {bad[0]}); "
                          "delete this checkpoint to resume from an earlier one")
    load_trainable(model, tensors, source=folder / TRAINABLE_FILE)
    optimizer_state = _read_state(folder / "optimizer.pt")
    with _damaged(folder / "optimizer.pt"):
        if load_optimizer is None:
            optimizer.load_state_dict(optimizer_state)
        else:
            load_optimizer(optimizer, optimizer_state, folder / "optimizer.pt")
    with _damaged(folder / "scheduler.pt"):
        scheduler.load_state_dict(_read_state(folder / "scheduler.pt"))
    with _damaged(folder / "rng.pt"):
        torch.set_rng_state(_read_state(folder / "rng.pt")["torch"])
    state = load_json(folder / "state.json", "a checkpoint's loop state")
    with _damaged(folder / "state.json"):
        random.setstate(_tuples(state["rng"]["python"]))
        numpy_state = state["rng"]["numpy"]
        np.random.set_state((numpy_state[0], np.array(numpy_state[1], dtype=np.uint32), *numpy_state[2:]))
        int(state["step"]), int(state["epoch"])
    return state


def _read_state(path: Path):
    """torch.load(weights_only=True) of a checkpoint file; LntuneError naming it when it is damaged."""
    with _damaged(path):
        return torch.load(path, weights_only=True)


@contextlib.contextmanager
def _damaged(path: Path):
    """Turn a failure to read or apply a checkpoint file into one LntuneError naming it."""
    try:
        yield
    except LntuneError:
        raise
    except FileNotFoundError:
        raise LntuneError(f"{path}: missing; the checkpoint is incomplete: delete it to resume from an earlier "
                          "one") from None
    except Exception as err:  # torch and pickle raise many types for a file cut short or overwritten
        detail = (str(err).strip().splitlines() or [""])[0][:100]
        raise LntuneError(f"{path}: damaged ({type(err).__name__}: {detail}); delete this checkpoint to resume from "
                          "an earlier one") from None


def save_result(output_dir: Path, model, run_meta: dict, tensors: dict | None = None) -> None:
    """The final result: only the trained tensors (`tensors` when already gathered), plus what lntune needs
    to rebuild base + strategy."""
    from lntune.train.finite import require_finite

    tensors = trainable_state(model) if tensors is None else tensors
    require_finite(tensors, output_dir / TRAINABLE_FILE)
    output_dir.mkdir(parents=True, exist_ok=True)
    replace_file(output_dir / TRAINABLE_FILE, lambda tmp: save_file(tensors, str(tmp)))
    write_text_atomic(output_dir / RUN_FILE, json.dumps(run_meta, indent=2))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def require_complete(folder: Path) -> None:
    for name in (TRAINABLE_FILE, "optimizer.pt", "scheduler.pt", "rng.pt", "state.json"):
        if not (folder / name).is_file():
            raise LntuneError(f"{folder}: incomplete checkpoint (missing {name})")
