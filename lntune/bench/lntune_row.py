"""The lntune row of `lntune bench`: `Trainer.step` of lntune/train/loop.py, timed.

The row sets up a `Trainer` for the recipe's run config as `lntune train` does (accelerator, seed, model,
strategy, dataset with every data option, optimizer, schedule, accelerate's wrappers) and times each call
of `Trainer.step` — forward/backward, clipping, the non-finite check, the update — with a timestamp after
each one. Every step takes the next batch of epoch 0's plan (distinct batches, as in a real run); a step's
time includes loading its batch. Peak memory is counted from the end of setup.

The "feature-cache" variant reuses vision-tower features computed before the timed steps, as a sweep or a
multi-epoch run can: its saving exists only at that level and is reported as its own row. The "compile"
variant sets train.compile (each decoder block under torch.compile).
"""

from __future__ import annotations

import hashlib
import time

import torch
from torch import nn

from lntune.bench.flops import strategy_weight_groups
from lntune.bench.inputs import build, full_batches, image_token_counts, run_config, synthetic_batches
from lntune.bench.measure import PeakMemory, batch_counts, stamp, summarize


def run_lntune_row(job: dict) -> dict:
    from lntune.train.loop import Trainer

    recipe, steps, variant = job["recipe"], job["warmup"] + job["steps"], job.get("variant")
    profiled = 1 if job.get("tensor_memory") else 0  # one more, untimed step under the memory profiler
    config = run_config(recipe, job["strategy"], compile_layers=variant == "compile")
    trainer = Trainer(config).start()
    started = time.perf_counter()
    trainer.build_model(build(recipe, config))
    build_s = time.perf_counter() - started
    image_tokens, vision_tokens = image_token_counts(trainer.model, trainer.processor)
    groups = strategy_weight_groups(trainer.model.config, trainer.spec)
    if recipe["kind"] == "files":
        trainer.load_data()
        batches = iter(trainer.loader(full_batches(trainer.dataset, config, steps + profiled), epoch=0))
    else:
        batches = synthetic_batches(recipe, steps + profiled)
    device = trainer.accelerator.device
    if variant == "feature-cache":
        batches = _with_cached_features(trainer.model, batches, steps + profiled, device)
    trainer.prepare(total_steps=steps)
    peak = PeakMemory(device.type)
    peak.reset()
    ends, counts, losses = [stamp(device.type)], [], []
    for _ in range(steps):
        group = [next(batches)]
        counts.append(batch_counts(group[0]))
        losses.append(trainer.step(group).loss)
        ends.append(stamp(device.type))
    extra = {"build_s": build_s, "loss_first": losses[0], "loss_last": losses[-1], "device": str(device),
             "threads": torch.get_num_threads()}
    if profiled:
        extra["tensor_memory"] = _profiled_step(trainer, next(batches), device.type)
    return summarize(job, ends, counts, groups, image_tokens, vision_tokens, peak, trainer.model, extra)


def _profiled_step(trainer, batch: dict, device: str) -> dict:
    """One more step under the memory profiler (lntune/bench/tensor_memory.py): its tensor peak, the batch's
    shape, and lntune/memory_model.py's prediction for that shape."""
    from lntune.bench.tensor_memory import tensor_peak
    from lntune.memory_model import predict_for_trainer

    measured = tensor_peak(lambda: trainer.step([batch]), trainer.model, trainer.optimizer, device)
    return {**measured, **predict_for_trainer(trainer, batch)}


def _with_cached_features(model, batches, steps: int, device):
    """Run the frozen vision tower over every batch first (as an earlier epoch or sweep run would have), then
    serve the feature layer the projector reads from memory, looked up by the pixels' bytes."""
    ready = list(batches)[:steps]
    tower, layer = model.model.vision_tower, model.config.vision_feature_layer
    cache = {}
    with torch.no_grad():
        for batch in ready:
            pixels = batch["pixel_values"]
            states = tower(pixels.to(device, tower.dtype), output_hidden_states=True, return_dict=True).hidden_states
            kept = [None] * len(states)
            kept[layer] = states[layer]
            cache[_pixel_key(pixels)] = tuple(kept)
    model.model.vision_tower = CachedTower(tower, cache, layer)
    return iter(ready)


def _pixel_key(pixels) -> bytes:
    return hashlib.blake2b(pixels.detach().cpu().numpy().tobytes(), digest_size=16).digest()


class CachedTower(nn.Module):
    """Stands in for a frozen vision tower whose outputs were computed before (see `_with_cached_features`)."""

    def __init__(self, tower, cache: dict, layer: int):
        super().__init__()
        self.config, self.cache, self.layer = tower.config, cache, layer
        self.patch_size = getattr(tower, "patch_size", tower.config.patch_size)

    @property
    def dtype(self):
        return next(iter(self.cache.values()))[self.layer].dtype

    def forward(self, pixel_values, **kwargs):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(hidden_states=self.cache[_pixel_key(pixel_values)])
