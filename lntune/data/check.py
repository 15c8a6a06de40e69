"""`check_dataset`: validate a LLaVA JSON file before anyone spends GPU hours on it.

Reports per-type counts, length statistics (tokens when a tokenizer or processor is given, else characters
and words) and one problem per line naming the sample (`FILE: sample #INDEX (id ID): what is wrong`):
malformed JSON (line and column), missing or unreadable images (fully decoded), image paths escaping the
image folder, missing or extra `<image>` tags, roles out of order, empty turns, and, with a tokenizer,
samples whose supervised tokens do not line up with their assistant turns. The command is

    lntune data check --data FILE [--images DIR] [--model DIR] [--max-length N] [--json]
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lntune.data.records import (
    IMAGE_TAG,
    load_records,
    record_type,
    sample_name,
    source_type,
    structure_problems,
    to_messages,
)
from lntune.errors import LntuneError


@dataclass
class CheckReport:
    """What `check_dataset` found; `ok` is False when there is any problem."""

    path: str
    samples: int = 0
    type_counts: dict = field(default_factory=dict)
    with_image: int = 0
    text_only: int = 0
    length_unit: str = "characters"
    length_stats: dict = field(default_factory=dict)  # unit -> {min, mean, median, p95, max}
    over_max_length: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def format(self) -> str:
        types = ", ".join(f"{t} {n}" for t, n in sorted(self.type_counts.items()))
        lines = [f"{self.path}: {self.samples} samples ({types or 'none'}); "
                 f"{self.with_image} with an image, {self.text_only} text-only"]
        for unit, s in self.length_stats.items():
            if not s:  # no sample could be measured
                continue
            lines.append(f"length in {unit}: min {s['min']}, mean {s['mean']:.1f}, median {s['median']:g}, "
                         f"p95 {s['p95']}, max {s['max']}")
        if self.over_max_length is not None:
            lines.append(f"over max_length: {self.over_max_length} samples")
        lines += [f"note: {note}" for note in self.notes]
        lines += self.problems
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def length_stats(values: list[int]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "mean": sum(ordered) / len(ordered),
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }


def check_dataset(path, image_folder=None, tokenizer=None, max_length: int | None = None,
                  decode_images: bool = True) -> CheckReport:
    """Check the LLaVA JSON file `path`; `tokenizer` may be a tokenizer or a LLaVA processor.

    With a processor, `<image>` counts as the model's image tokens; with a bare tokenizer it stays the tag.
    A tokenizer without a chat template gets lntune's default (as training would, see templates.py).
    `decode_images=False` reads image headers only (faster on large image folders).
    """
    from tqdm import tqdm

    report = CheckReport(path=str(path))
    try:
        records = load_records(path)
    except LntuneError as err:
        report.problems.append(str(err))
        return report
    if not records:
        report.problems.append(f"{path}: no samples (the file holds no records); nothing to train on")
        return report
    encoder = _Encoder(tokenizer, report) if tokenizer is not None else None
    if image_folder is None:
        report.notes.append("image files not checked (no image folder given)")
    elif not Path(image_folder).is_dir():
        report.problems.append(f"{image_folder}: image folder not found")
        image_folder = None
    default_type = source_type(path)
    types, chars, words = Counter(), [], []
    for index, record in enumerate(tqdm(records, desc="checking", unit="sample", disable=len(records) < 2000)):
        where = f"{path}: {sample_name(record, index)}"
        types[record_type(record, default_type)] += 1
        problems = structure_problems(record)
        well_formed = not problems
        has_image = isinstance(record, dict) and record.get("image") is not None
        report.with_image += has_image
        report.text_only += isinstance(record, dict) and not has_image
        if has_image and isinstance(record["image"], str):
            problems += _image_problems(record["image"], image_folder, decode_images)
        if well_formed:
            text = [m["content"] for m in to_messages(record)]
            chars.append(sum(len(t) for t in text))
            words.append(sum(len(t.split()) for t in text))
            if encoder is not None and not problems:
                problems += encoder.add(record, has_image)
        report.problems += [f"{where}: {p}" for p in problems]
    report.samples = len(records)
    report.type_counts = dict(types)
    if encoder is not None:
        report.length_unit = "tokens"
        report.length_stats = {"tokens": length_stats(encoder.lengths)}
        if max_length is not None:
            report.over_max_length = sum(n > max_length for n in encoder.lengths)
    else:
        report.length_stats = {"characters": length_stats(chars), "words": length_stats(words)}
    return report


def _image_problems(rel: str, image_folder, decode: bool) -> list[str]:
    from lntune.data.images import check_relative, image_problem

    if image_folder is None:
        try:
            check_relative(rel)
        except LntuneError as err:
            return [str(err)]
        return []
    problem = image_problem(image_folder, rel, decode=decode)
    return [problem] if problem else []


class _Encoder:
    """Tokenizes samples as training would (chat template, image tokens, label masking) to measure lengths."""

    def __init__(self, tokenizer, report: CheckReport):
        from lntune.data.conversation import tokenizer_of
        from lntune.data.templates import ensure_chat_template

        self.processor = tokenizer if hasattr(tokenizer, "image_processor") else None
        self.tokenizer = tokenizer_of(tokenizer)
        used = ensure_chat_template(self.tokenizer)
        if used != "own":
            report.notes.append(f"the tokenizer has no chat template; checked with lntune's {used!r}")
        if self.processor is not None:
            from lntune.data.conversation import num_image_tokens

            self.image_token, self.count = self.processor.image_token, num_image_tokens(self.processor)
        else:
            self.image_token, self.count = IMAGE_TAG, 1
        self.lengths: list[int] = []

    def add(self, record: dict, has_image: bool) -> list[str]:
        from lntune.data.conversation import encode_conversation, expand_image_tags

        messages = expand_image_tags(to_messages(record), self.image_token, self.count)
        try:
            encoded = encode_conversation(self.tokenizer, messages)
        except LntuneError as err:
            return [str(err)]
        self.lengths.append(len(encoded.input_ids))
        return []
