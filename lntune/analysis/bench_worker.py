"""One row of `lntune bench`, run in its own process so that its peak memory is its own.

    python -m lntune.analysis.bench_worker JOB.json ROW.json

JOB holds the preset's recipe, the implementation ("lntune" or "hf-peft"), the strategy and how many
warm-up and timed steps to run. The lntune row is the training step of `lntune train` — the same config
object, model building (`build_model`), `apply_strategy`, dataset, length-grouped epoch plan, DataLoader,
AdamW, cosine schedule, `SupervisedLoss` and `_optimizer_step` from lntune/train/loop.py — run for a few
steps with a timestamp after each one. Every step takes the next batch of the epoch (distinct batches, as
in a real run); a step's time includes loading its batch. Peak memory is counted from the end of model
building (on CPU: the peak resident set, reset through /proc/self/clear_refs; on CUDA:
max_memory_allocated), so the rows compare training, not loading.

The "feature-cache" variant reuses vision-tower features computed before the timed steps, as a sweep or a
multi-epoch run can: its saving exists only at that level and is reported as its own row.
"""

from __future__ import annotations

import gc
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from lntune.analysis.bench_flops import step_flop_floor, strategy_weight_groups


def run_config(recipe: dict, strategy: str, output_dir: str = "bench-unused"):
    """The RunConfig `lntune train` would get for this recipe and strategy."""
    from lntune.config import load_config

    data = {"output_dir": output_dir,
            "model": {"llm": recipe.get("llm", "embedded"), "vision": recipe.get("vision", "unused"), "dtype": recipe["dtype"]},
            "data": {"path": recipe.get("data", "unused"), "image_folder": recipe.get("images", "unused"),
                     "max_length": recipe.get("max_length", 2048), "max_samples": recipe.get("max_samples"),
                     "group_by_length": True, "num_workers": 0},
            "train": {"strategy": strategy, "batch_size": recipe["batch_size"], "lr": recipe["lr"], "seed": recipe["seed"],
                      "mixed_precision": recipe["mixed_precision"], "gradient_checkpointing": recipe["gradient_checkpointing"],
                      "lora": recipe["lora"], "max_grad_norm": 1.0, "weight_decay": 0.0}}
    return load_config(data=data)


def build(recipe: dict, config):
    """(model, processor or None) on the recipe's device, frozen weights in the recipe's dtype."""
    if recipe["kind"] == "files":
        from lntune.train.loop import build_model

        return build_model(config)
    from lntune.analysis.bench_presets import random_config
    from lntune.model.projector import LntuneLlavaForConditionalGeneration

    with torch.device(recipe["device"]):
        model = LntuneLlavaForConditionalGeneration._from_config(random_config(recipe["model"]), dtype=getattr(torch, recipe["dtype"]))
    return model, None


def image_token_counts(model, processor) -> tuple[int, int]:
    """(LLM tokens per image, vision-tower tokens per image)."""
    vision = model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    if processor is not None:
        from lntune.model.build import num_image_tokens

        image_tokens = num_image_tokens(processor)
        extra = processor.num_additional_image_tokens
    else:
        image_tokens, extra = patches, 1
    return image_tokens, patches + extra


def batch_plan(recipe: dict, config, processor, count: int):
    """(dataset or None, an iterator over `count` distinct batches in the order `lntune train` takes them)."""
    if recipe["kind"] == "random":
        return None, synthetic_batches(recipe, count)
    from lntune.data.collate import LlavaCollator
    from lntune.data.dataset import LlavaDataset
    from lntune.train import batches as plan

    d, t = config.data, config.train
    dataset = LlavaDataset(d.path, d.image_folder, processor, max_length=d.max_length, max_samples=d.max_samples, seed=t.seed)
    micro = plan.epoch_micro_batches(dataset.lengths, t.batch_size, t.seed, 0, d.group_by_length, 1)
    micro = [b for b in micro if len(b) == t.batch_size]  # every row sees full batches
    if len(micro) < count:
        from lntune.errors import LntuneError

        raise LntuneError(f"{d.path}: {len(dataset)} samples give {len(micro)} full batches of {t.batch_size}; "
                          f"the bench needs {count}")
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=micro[:count], collate_fn=LlavaCollator(processor.tokenizer.pad_token_id),
                                         num_workers=d.num_workers, generator=torch.Generator().manual_seed(t.seed))
    return dataset, iter(loader)


def synthetic_batches(recipe: dict, count: int):
    """Random token ids (image tokens after BOS) with the last `supervised_tokens` positions supervised."""
    from lntune.analysis.bench_presets import random_config

    config = random_config(recipe["model"])
    vision = config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    size, length = recipe["batch_size"], 1 + image_tokens + recipe["text_tokens"]
    generator = torch.Generator().manual_seed(recipe["seed"])
    for _ in range(count):
        ids = torch.randint(3, config.text_config.vocab_size - 1, (size, length), generator=generator)
        ids[:, 0] = 1
        ids[:, 1:1 + image_tokens] = config.image_token_id
        labels = torch.full_like(ids, -100)
        labels[:, -recipe["supervised_tokens"]:] = ids[:, -recipe["supervised_tokens"]:]
        yield {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
               "pixel_values": torch.randn(size, 3, vision.image_size, vision.image_size, generator=generator)}


class PeakMemory:
    """Peak memory since `reset()`: CUDA max_memory_allocated, or the CPU peak resident set (VmHWM)."""

    def __init__(self, device: str):
        self.device = device
        self.scope = "since reset"
        self.at_reset_mb = 0.0

    def reset(self) -> None:
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            return
        _malloc_trim()  # hand freed build-time heap back, so every row starts from its live memory
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.scope = "whole process (peak RSS could not be reset)"
        self.at_reset_mb = self.current_mb()

    def current_mb(self) -> float:
        """Memory in use now: CUDA memory_allocated, or the resident set (VmRSS)."""
        if self.device == "cuda":
            return torch.cuda.memory_allocated() / 2**20
        return _status_kb("VmRSS") / 1024

    def peak_mb(self) -> float:
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        peak = _status_kb("VmHWM")
        if peak:
            return peak / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def count_trainable(model) -> tuple[int, int]:
    """(trainable, total) over unique tensors."""
    from lntune.accounting import count, requires_grad_names

    return count(model, requires_grad_names(model))


def stamp(device: str) -> tuple[float, float]:
    """(wall clock, this process's CPU time) once the device is idle."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def summarize(job: dict, ends: list[tuple], counts: list[dict], groups, image_tokens: int, vision_tokens: int,
              peak: PeakMemory, model, extra: dict) -> dict:
    """The row: median timed step (wall clock, and CPU time of the process), tokens/s over the timed steps,
    peak memory, trainable parameters, FLOP floor. `ends` holds a `stamp()` before the first step and after each."""
    warmup = job["warmup"]
    times = [b[0] - a[0] for a, b in zip(ends[:-1], ends[1:])][warmup:]
    cpu_times = [b[1] - a[1] for a, b in zip(ends[:-1], ends[1:])][warmup:]
    timed = counts[warmup:]
    floors = [step_flop_floor(groups, c["tokens"], c["supervised"], c["images"], image_tokens, vision_tokens) for c in timed]
    trainable, total = count_trainable(model)
    seconds = sum(times)
    text = model.config.get_text_config()
    return {"impl": job["impl"], "strategy": job["strategy"], "variant": job.get("variant", ""),
            "step_time_s": statistics.median(times), "tokens_per_s": sum(c["tokens"] for c in timed) / seconds,
            "peak_mem_mb": peak.peak_mb(), "peak_mem_scope": peak.scope, "mem_at_start_mb": peak.at_reset_mb, "trainable": trainable, "total": total,
            "flop_floor": statistics.mean(floors), "floor_gflops": sum(floors) / seconds / 1e9,
            "step_times_s": times, "cpu_step_times_s": cpu_times, "steps": timed, "weights": groups.to_dict(), "image_tokens": image_tokens,
            "vision_tokens": vision_tokens, "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
            **extra}


def batch_counts(batch: dict) -> dict:
    return {"tokens": int(batch["attention_mask"].sum()), "supervised": int((batch["labels"][:, 1:] != -100).sum()),
            "images": int(batch["pixel_values"].shape[0]) if "pixel_values" in batch else 0}


def run_lntune_row(job: dict) -> dict:
    """The `lntune train` step, timed."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from lntune.strategies import apply_strategy
    from lntune.train import loop
    from lntune.train.loss import SupervisedLoss
    from lntune.train.optim import make_optimizer

    recipe, steps = job["recipe"], job["warmup"] + job["steps"]
    config = run_config(recipe, job["strategy"])
    t = config.train
    accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=recipe["device"] != "cuda")
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = t.tf32
    set_seed(t.seed)
    started = time.perf_counter()
    model, processor = build(recipe, config)
    spec = loop.strategy_spec(config)
    apply_strategy(model, spec)
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    build_s = time.perf_counter() - started
    image_tokens, vision_tokens = image_token_counts(model, processor)
    groups = strategy_weight_groups(model.config, spec)
    _, batches = batch_plan(recipe, config, processor, steps)
    if job.get("variant") == "feature-cache":
        batches = _with_cached_features(model, batches, steps, accelerator.device)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, t)
    scheduler = loop._scheduler(optimizer, t.scheduler, 1, steps)
    loss = SupervisedLoss(model, compile_layers=job.get("variant") == "compile")
    wrapper, optimizer = accelerator.prepare(loss, optimizer)
    peak = PeakMemory(accelerator.device.type)
    peak.reset()
    device = accelerator.device.type
    ends, counts, losses = [stamp(device)], [], []
    for _ in range(steps):
        group = [next(batches)]
        counts.append(batch_counts(group[0]))
        loss, _, _ = loop._optimizer_step(accelerator, wrapper, optimizer, group, params, t.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        ends.append(stamp(device))
        losses.append(loss)
    return summarize(job, ends, counts, groups, image_tokens, vision_tokens, peak, model,
                     {"build_s": build_s, "loss_first": losses[0], "loss_last": losses[-1], "device": str(accelerator.device),
                      "threads": torch.get_num_threads()})


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


def run_job(job: dict) -> dict:
    """Run one row, then measure the matmul rate in the same process and moment (same threads, same load)."""
    from lntune.analysis.bench_matmul import matmul_gflops

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    try:
        if job["impl"] == "hf-peft":
            from lntune.analysis.bench_baseline import run_hf_row

            row = run_hf_row(job)
        else:
            row = run_lntune_row(job)
    except torch.OutOfMemoryError as err:  # Table 2's "OOM": a result, not a failure of the bench
        return {"impl": job["impl"], "strategy": job["strategy"], "variant": job.get("variant", ""), "oom": True,
                "error": str(err).splitlines()[0]}
    recipe = job["recipe"]
    dtype = "bfloat16" if recipe["mixed_precision"] == "bf16" and recipe["device"] == "cuda" else recipe["dtype"]
    tokens = int(statistics.median(c["tokens"] for c in row["steps"]))
    row["matmul"] = matmul_gflops(row["hidden_size"], row["intermediate_size"], tokens, dtype, recipe["device"])
    return row


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    row = run_job(job)
    Path(argv[1]).write_text(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
