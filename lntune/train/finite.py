"""Finite or nothing: a non-finite loss, gradient or weight never becomes a checkpoint, a result or "done".

    guard = FiniteGuard(output_dir, policy="stop", last_good=lambda: list_checkpoints(output_dir))  # stop | skip
    skip = guard.before_update(step, loss, grad_norm)      # raises NonFiniteError under "stop"
    ...optimizer.step() unless skip...
    guard.after_update(step, params, accelerator)          # raises when the update made a weight non-finite
    guard.finish()                                         # raises when every step was skipped

`require_finite` is the last line of defence: every save of trainable tensors calls it, so no
`*.safetensors` lntune writes holds a NaN or an infinity. A NonFiniteError is a LntuneError, so the
command exits with status 2 and names the last good checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from lntune.errors import LntuneError


class NonFiniteError(LntuneError):
    """Training reached a non-finite value; nothing of that step was saved."""


def nonfinite_names(tensors: dict) -> list[str]:
    """Names of the tensors holding at least one NaN or infinity."""
    return [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def require_finite(tensors: dict, what) -> None:
    """NonFiniteError naming `what` (a file or checkpoint) when any tensor is not finite."""
    bad = nonfinite_names(tensors)
    if bad:
        raise NonFiniteError(f"{what}: {len(bad)} of {len(tensors)} tensors hold NaN or infinite values "
                             f"(e.g. {bad[0]}); not written")


def _finite(value) -> bool:
    return value is None or math.isfinite(float(value))


class FiniteGuard:
    """Checks one training run's loss, gradient norm and weights at every optimizer step."""

    def __init__(self, output_dir: Path, policy: str = "stop", last_good: Callable[[], list] | None = None):
        """`last_good()` lists the run's checkpoints, oldest first, for the error message."""
        self.output_dir = Path(output_dir)
        self.policy = policy
        self.last_good = last_good
        self.skipped = 0
        self.updated = 0

    def _last_good(self) -> str:
        found = self.last_good() if self.last_good else []
        return str(found[-1]) if found else "none (set train.save_steps)"

    def before_update(self, step: int, loss: float, grad_norm) -> bool:
        """True when this step must be skipped; NonFiniteError when the run must stop."""
        if _finite(loss) and _finite(grad_norm):
            return False
        what = f"loss ({loss})" if not _finite(loss) else f"gradient norm ({float(grad_norm)})"
        if self.policy == "skip":
            self.skipped += 1
            print(f"lntune: non-finite {what} at step {step}: skipped this update (train.on_nonfinite=skip)")
            return True
        raise NonFiniteError(f"non-finite {what} at step {step}: stopped before updating the weights; "
                             f"last good checkpoint: {self._last_good()}")

    def after_update(self, step: int, params, accelerator=None) -> None:
        """NonFiniteError when the update of `step` left a trainable weight NaN or infinite."""
        self.updated += 1
        with torch.no_grad():
            # this process's shards: FSDP2's DTensor, DeepSpeed ZeRO-3's partition (ds_tensor)
            local = [p.to_local() if hasattr(p, "to_local") else getattr(p, "ds_tensor", p) for p in params]
            bad = torch.stack([torch.isfinite(p).all().logical_not() for p in local]).sum().float()
            if accelerator is not None and accelerator.num_processes > 1:  # sharded weights: agree on all ranks
                bad = accelerator.reduce(bad, reduction="sum")
        if bad.item():
            raise NonFiniteError(f"the update of step {step} made {int(bad.item())} trainable tensors NaN or infinite "
                                 f"(learning rate too high?): stopped, nothing of step {step} was saved; last good "
                                 f"checkpoint: {self._last_good()}")

    def finish(self) -> None:
        """After the loop: an error when no update was applied at all (every step skipped)."""
        if self.skipped and not self.updated:
            raise NonFiniteError(f"all {self.skipped} steps had non-finite values and were skipped: nothing was "
                                 "trained, no result written")
        if self.skipped:
            print(f"lntune: {self.skipped} steps skipped for non-finite values (train.on_nonfinite=skip)")
