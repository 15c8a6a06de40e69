"""The small interface every benchmark task implements, and helpers the tasks share.

A task turns the official benchmark files under the data root into `Sample`s (an id, an image path and
the chat messages of the prompt), parses each generated answer, writes the benchmark's official result
files, and scores them with lntune.eval.metrics. The runner (lntune/eval/runner.py) does the rest:
render prompts, batch, generate, append to the resume JSONL. One module per benchmark:

    mme.py  vqav2.py  captioning.py (coco, flickr30k)  pope.py     registered in registry.py

Protocols: "official" (each benchmark's own protocol, greedy) and "paper" (the authors' harness,
UCSC-VLAA/Sight-Beyond-Text: sampling, short answers, MME without landmark/artwork, a seeded VQAv2
subset with text demonstrations). See docs/evaluation.md.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.bootstrap import DEFAULT_RESAMPLES

IMAGE = "<image>"
PROTOCOLS = ("official", "paper")


@dataclass
class Sample:
    """One question: `id` is unique within its task (the resume key); `meta` holds what the outputs need."""

    id: str
    image: Path
    messages: list[dict]
    meta: dict = field(default_factory=dict)


@dataclass
class Decoding:
    """How a protocol decodes by default (the CLI can override each field)."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    # Greedy only: a row stops once more text could not change its scored answer (Task.settled).
    stop_when_settled: bool = False

    def record(self) -> dict:
        """The settings as eval_config.json keeps them (stop_when_settled only when on)."""
        settings = asdict(self)
        if not self.stop_when_settled:
            del settings["stop_when_settled"]
        return settings


# The authors' harness: `--num_beams 1 --do_sample --top_k 50`, temperature 0.2, max_generation_length 10.
PAPER_DECODING = Decoding(max_new_tokens=10, do_sample=True, temperature=0.2, top_k=50)


def user_turn(question: str) -> dict:
    """The user message carrying the image, LLaVA style: "<image>\\n" + question."""
    return {"role": "user", "content": f"{IMAGE}\n{question}"}


def text_demo(question: str, answer: str) -> list[dict]:
    """A text-only demonstration: one user and one assistant message, no image."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


class Task(ABC):
    """Base class: subclasses set `name`, `official_max_new_tokens` and implement the abstract methods."""

    name = ""
    official_max_new_tokens = 16
    # Where the task's files live under the data root, shown in missing-file errors.
    layout = ""
    # Resamples for the 95% intervals of the metrics (lntune eval --bootstrap; 0: no intervals).
    bootstrap = DEFAULT_RESAMPLES
    # Whether `settled` can end a greedy answer early (tasks whose official parser reads only its start).
    stops_when_settled = False

    def __init__(self, data_root, image_root=None, protocol: str = "official", seed: int = 42):
        if protocol not in PROTOCOLS:
            raise LntuneError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
        self.data_root = Path(data_root)
        self.image_root = Path(image_root) if image_root is not None else self.data_root.parent / "images"
        self.protocol = protocol
        self.seed = seed

    def decoding(self) -> Decoding:
        if self.protocol == "paper":
            return PAPER_DECODING
        return Decoding(max_new_tokens=self.official_max_new_tokens, stop_when_settled=self.stops_when_settled)

    @abstractmethod
    def samples(self, limit: int | None = None) -> list[Sample]:
        """The questions in document order (the first `limit` of them when given)."""

    def parse(self, text: str) -> str:
        """The answer that goes into the official result file, from the generated text."""
        return text.strip()

    def settled(self, text: str) -> bool:
        """Whether the official scorer reads the same answer from `text` (a stripped answer so far) and
        from every text that continues it; tasks with `stops_when_settled` override this."""
        return False

    @abstractmethod
    def write_outputs(self, samples: list[Sample], answers: dict[str, dict], out_dir: Path) -> list[Path]:
        """Write the official-format result files under out_dir/<task>/ from the JSONL records `answers` (by id)."""

    @abstractmethod
    def score(self, samples: list[Sample], answers: dict[str, dict], out_dir: Path) -> dict:
        """Metrics of the written results (call after write_outputs)."""

    # -- helpers for subclasses ------------------------------------------------------------------

    def require(self, path: Path, what: str) -> Path:
        """`path` if it exists, else a LntuneError naming it and the expected layout."""
        if not path.exists():
            raise LntuneError(f"{self.name}: {what} not found: {path} (expected layout under the data root: "
                              f"{self.layout}; see docs/evaluation.md)")
        return path

    def find_image(self, names: list[str], sample_id: str, folders: list[Path] | None = None) -> Path:
        """The first existing `folder/name` (folders default to the image root and its task subfolders)."""
        folders = folders if folders is not None else self.image_folders()
        for folder in folders:
            for name in names:
                if name and (folder / name).is_file():
                    return folder / name
        raise LntuneError(
            f"{self.name}: image for sample {sample_id} not found: looked for {names[0]!r} in "
            f"{', '.join(str(f) for f in folders)} (set --image-root; see docs/evaluation.md)"
        )

    def image_folders(self) -> list[Path]:
        return [self.image_root]

    def scored(self, benchmark: str, units: list[dict], out_dir: Path, **summary_kwargs) -> dict:
        """The official result of per-unit records, with "ci95" unless bootstrap is 0; the records are
        kept in <out>/units/<task>.json for `lntune compare`."""
        from lntune.eval.intervals import score_units, units_path, write_units

        write_units(units_path(out_dir, self.name), benchmark, units)
        return score_units(benchmark, units, self.bootstrap, **summary_kwargs)

    def task_dir(self, out_dir: Path) -> Path:
        path = Path(out_dir) / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path


def read_json(path: Path, what: str):
    """A JSON document, or a LntuneError naming the file, line and column that do not parse."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LntuneError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({what}): {err.msg}") from None
    except (UnicodeDecodeError, RecursionError) as err:
        raise LntuneError(f"{path}: not readable as JSON ({what}): {type(err).__name__}") from None


def read_json_lines(path: Path, what: str) -> list[dict]:
    """JSON-lines records (blank lines skipped), or a LntuneError naming the bad line."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise LntuneError(f"{path}:{number}: not valid JSON ({what}): {err.msg}") from None
    return records


def write_json(path: Path, data) -> Path:
    """Write strict JSON atomically (per-process temporary file + rename): a kill never leaves half a file."""
    from lntune.jsonio import dumps_strict
    from lntune.locks import write_text_atomic

    path = Path(path)
    return write_text_atomic(path, dumps_strict(data, path, indent=2, ensure_ascii=False) + "\n")
