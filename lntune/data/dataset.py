"""LlavaDataset: LLaVA JSON (stage-1 captions or multi-turn instruct) as input ids, labels and pixels.

Every sample is checked when the dataset is built, so training never stops half-way through an epoch on
a sample a check could have caught: shape and roles, `<image>` tags, the image path (inside the image
folder, file present, fully decoded: a truncated or corrupt file is caught here, not at step N), and the
full tokenization with the label-masking check. Images are decoded in parallel threads, each file once;
`stats["image_check_s"]` holds the time it took. Only the token lengths are kept (for length-grouped
batching); items are re-encoded in `__getitem__`.

- `data_types` keeps samples of those types (see lntune/data/records.py for how a type is known);
  `max_samples` then takes a seeded random subset of that size (bad or over-long samples are replaced by
  the next ones in the seeded order, so the subset has exactly `max_samples` samples when enough exist);
- `truncation="drop"` drops samples longer than `max_length`; "text" cuts their tail instead, unless that
  would cut image tokens or leave nothing supervised (then the sample is dropped). Drops are counted;
- `on_bad_sample="error"` raises on the first bad sample, naming it; "skip" logs each and the total.

    from lntune.data.dataset import LlavaDataset, build_dataset
    ds = LlavaDataset("world/instruct/mixed.json", "world/images", processor, data_types=["conversation"])
    ds = build_dataset(config.data, processor, seed=config.train.seed)   # every option of a run's `data:`
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lntune.data.conversation import IGNORE_INDEX, Encoded, encode_conversation, expand_image_tags, num_image_tokens
from lntune.data.images import image_problem, load_image
from lntune.data.records import load_records, record_type, sample_name, source_type, structure_problems, to_messages
from lntune.errors import LntuneError

log = logging.getLogger("lntune.data")
_DECODE_CHUNK = 256  # samples whose images are decoded together


@dataclass
class _Sample:
    record: dict
    where: str  # "FILE: sample #i (id X)", for messages
    type: str
    length: int = 0


def gather_records(records_or_path) -> list[_Sample]:
    """Samples from a LLaVA JSON path, a list of paths, or a list of record dicts, each with its type."""
    if isinstance(records_or_path, (str, Path)):
        records_or_path = [records_or_path]
    samples = []
    if all(isinstance(x, (str, Path)) for x in records_or_path):
        for path in records_or_path:
            default = source_type(path)
            for i, record in enumerate(load_records(path)):
                samples.append(_Sample(record, f"{path}: {sample_name(record, i)}", record_type(record, default)))
    else:
        for i, record in enumerate(records_or_path):
            samples.append(_Sample(record, f"records: {sample_name(record, i)}", record_type(record, "untyped")))
    return samples


def select_types(samples: list[_Sample], data_types) -> list[_Sample]:
    """The samples whose type is in `data_types` (all when None); an unknown type is an error."""
    if data_types is None:
        return samples
    if isinstance(data_types, str):
        data_types = [data_types]
    present = sorted({s.type for s in samples})
    unknown = [t for t in data_types if t not in present]
    if unknown:
        raise LntuneError(f"data_types: no sample of type {', '.join(map(repr, unknown))}; types present: {', '.join(present)}")
    return [s for s in samples if s.type in set(data_types)]


class LlavaDataset(Dataset):
    """LLaVA JSON samples as dicts of input_ids, labels, attention_mask (1-D LongTensors) and pixel_values (C,H,W)."""

    def __init__(
        self,
        records_or_path,
        image_folder,
        processor,
        max_length: int = 2048,
        data_types=None,
        max_samples: int | None = None,
        seed: int = 0,
        truncation: str = "drop",
        on_bad_sample: str = "error",
    ):
        if truncation not in ("drop", "text"):
            raise LntuneError(f"truncation: expected 'drop' or 'text', got {truncation!r}")
        if on_bad_sample not in ("error", "skip"):
            raise LntuneError(f"on_bad_sample: expected 'error' or 'skip', got {on_bad_sample!r}")
        if max_length < 1:
            raise LntuneError(f"max_length: must be positive, got {max_length}")
        if max_samples is not None and max_samples < 1:
            raise LntuneError(f"max_samples: must be positive, got {max_samples}")
        self.image_folder = Path(image_folder) if image_folder is not None else None
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self.truncation = truncation
        self.image_token = processor.image_token
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.num_image_tokens = num_image_tokens(processor)

        candidates = select_types(gather_records(records_or_path), data_types)
        order = list(range(len(candidates)))
        if max_samples is not None:
            random.Random(seed).shuffle(order)
        self.stats = {"candidates": len(candidates), "kept": 0, "skipped": 0, "dropped_too_long": 0, "truncated": 0}
        kept = self._check_all(candidates, order, max_samples, on_bad_sample)
        self.samples = [candidates[i] for i in sorted(kept)]
        self.stats["kept"] = len(self.samples)
        if max_samples is not None and len(self.samples) < max_samples:
            log.warning("max_samples=%d but only %d usable samples were found", max_samples, len(self.samples))

    def _check_all(self, candidates, order, max_samples, on_bad_sample) -> list[int]:
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        target = len(order) if max_samples is None else min(max_samples, len(order))
        kept, too_long = [], []
        self._image_problems, decode_seconds = {}, 0.0
        with tqdm(total=target, desc="checking samples", unit="sample", disable=target < 2000) as bar, \
                ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            # Chunks: with max_samples, only images of samples that may be kept are decoded.
            for start in range(0, len(order), _DECODE_CHUNK):
                if len(kept) == target:
                    break
                chunk = order[start:start + _DECODE_CHUNK]
                started = time.perf_counter()
                self._decode_images(pool, [candidates[i].record for i in chunk])
                decode_seconds += time.perf_counter() - started
                for i in chunk:
                    if len(kept) == target:
                        break
                    sample = candidates[i]
                    try:
                        encoded, reason = self._encode(sample, check_image=True)
                    except LntuneError as err:
                        if on_bad_sample == "error":
                            raise LntuneError(f"{sample.where}: {err}") from None
                        log.warning("skipping %s: %s", sample.where, err)
                        self.stats["skipped"] += 1
                        continue
                    if encoded is None:
                        too_long.append(f"{sample.where} ({reason})")
                        continue
                    sample.length = len(encoded.input_ids)
                    self.stats["truncated"] += encoded.truncated
                    kept.append(i)
                    bar.update(1)
        self.stats["images_decoded"], self.stats["image_check_s"] = len(self._image_problems), round(decode_seconds, 3)
        self._image_problems = {}  # only the start-up check needs it; DataLoader workers would each carry a copy
        self.stats["dropped_too_long"] = len(too_long)
        if too_long:
            log.warning("dropped %d samples over max_length=%d (truncation=%s), e.g. %s",
                        len(too_long), self.max_length, self.truncation, too_long[0])
        if self.stats["skipped"]:
            log.warning("skipped %d bad samples of %d (on_bad_sample=skip)", self.stats["skipped"], len(candidates))
        return kept

    def _decode_images(self, pool, records) -> None:
        """Decode each new image of `records` fully (in parallel) and remember what is wrong with it, if anything."""
        names = {r["image"] for r in records if isinstance(r, dict) and isinstance(r.get("image"), str)}
        names = sorted(n for n in names if n not in self._image_problems)
        if self.image_folder is None or not names:
            return
        found = pool.map(lambda rel: image_problem(self.image_folder, rel, decode=True), names)
        self._image_problems.update(zip(names, found))

    def _encode(self, sample: _Sample, check_image: bool = False) -> tuple[Encoded | None, str | None]:
        """The sample's tokens and labels fitted to max_length, or (None, why) when it must be dropped."""
        problems = structure_problems(sample.record)
        if problems:
            raise LntuneError("; ".join(problems))
        image = sample.record.get("image")
        if check_image and image is not None:
            if self.image_folder is None:
                raise LntuneError("the sample has an image but no image folder was given")
            problem = self._image_problems.get(image) if image in self._image_problems else \
                image_problem(self.image_folder, image, decode=True)
            if problem:
                raise LntuneError(problem)
        messages = expand_image_tags(to_messages(sample.record), self.image_token, self.num_image_tokens)
        enc = encode_conversation(self.tokenizer, messages)
        expected = self.num_image_tokens if image is not None else 0
        found = enc.input_ids.count(self.image_token_id)
        if found != expected:
            raise LntuneError(f"expected {expected} image tokens after tokenizing, found {found}")
        return self._fit(enc)

    def _fit(self, enc: Encoded) -> tuple[Encoded | None, str | None]:
        n = len(enc.input_ids)
        if n <= self.max_length:
            return enc, None
        if self.truncation == "drop":
            return None, f"{n} tokens"
        image_positions = [j for j, t in enumerate(enc.input_ids) if t == self.image_token_id]
        if image_positions and image_positions[-1] >= self.max_length:
            return None, f"{n} tokens, image tokens end at {image_positions[-1] + 1}"
        labels = enc.labels[: self.max_length]
        if all(label == IGNORE_INDEX for label in labels):
            return None, f"{n} tokens, nothing supervised within the first {self.max_length}"
        return Encoded(enc.input_ids[: self.max_length], labels, truncated=True), None

    @property
    def lengths(self) -> list[int]:
        """Token length of every sample (after truncation), for length-grouped batching without images."""
        return [s.length for s in self.samples]

    @property
    def types(self) -> list[str]:
        return [s.type for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        try:
            enc, _ = self._encode(sample)
            item = {
                "input_ids": torch.tensor(enc.input_ids, dtype=torch.long),
                "labels": torch.tensor(enc.labels, dtype=torch.long),
                "attention_mask": torch.ones(len(enc.input_ids), dtype=torch.long),
            }
            image = sample.record.get("image")
            if image is not None:
                pil = load_image(self.image_folder, image)
                pixels = self.processor.image_processor(images=pil, return_tensors="pt")["pixel_values"]
                item["pixel_values"] = pixels[0]
        except LntuneError as err:
            raise LntuneError(f"{sample.where}: {err}") from None
        return item


def build_dataset(data, processor, seed: int) -> LlavaDataset:
    """The dataset of a run config's `data` section (lntune.config.DataConfig), with every option it sets:
    what `lntune train` trains on, and what anything measuring or probing training must use too."""
    return LlavaDataset(data.path, data.image_folder, processor, max_length=data.max_length, data_types=data.data_types,
                        max_samples=data.max_samples, seed=seed, truncation=data.truncation,
                        on_bad_sample=data.on_bad_sample)
