"""Run benchmark tasks on a model: batched generation, resumable predictions, official outputs, metrics.

    from lntune.eval.runner import evaluate
    metrics = evaluate(model, processor, ["mme", "pope"], data_root="world/eval", out_dir="runs/eval")

or `lntune eval --model DIR --tasks mme,vqav2,coco,flickr30k,pope --data-root DIR --out DIR`.

Every generated answer is appended to <out>/predictions/<task>.jsonl (`id`, `image`, `prompt`, `text`),
flushed after each batch; running the same command again skips the ids already answered, so a killed
run continues where it stopped. With greedy decoding, questions with the same image and rendered prompt
are generated once and every one of them gets a record with that answer, the questions about one image
share a batch and run their common prompt prefix once (lntune/eval/shared_prefix.py), and on POPE and MME an answer
ends as soon as more text could not change what the official scorer reads from it (lntune/eval/settled.py;
timing.json counts the questions answered and the distinct requests generated). When a task is complete its
official-format files are written from that JSONL (<out>/<task>/...), scored, and <out>/metrics.json and
<out>/results.md (the paper's Table 1 layout) are updated. <out>/eval_config.json pins the protocol, the
model's precision and the decoding settings: resuming with different ones is refused, as mixing them would make
the numbers meaningless; lntune/eval/pinning.py pins the model and data the same way. One process at a time
writes <out> (lntune/locks.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

from lntune.errors import LntuneError
from lntune.locks import locked
from lntune.eval import generate as gen
from lntune.eval.bootstrap import DEFAULT_RESAMPLES
from lntune.eval.shared_prefix import group_by_image
from lntune.eval.tasks.base import Decoding, Sample, Task, write_json
from lntune.eval.tasks.registry import get_task, parse_task_list

CONFIG_FILE = "eval_config.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "results.md"
TIMING_FILE = "timing.json"


@locked("out_dir", "evaluation")
def evaluate(model, processor, tasks: list[str] | str, data_root, out_dir, protocol: str = "official",
             batch_size: int = 8, limit: int | dict | None = None, image_root=None, max_new_tokens: int | None = None,
             do_sample: bool | None = None, temperature: float | None = None, top_k: int | None = None,
             seed: int = 42, model_name: str = "model", progress: bool = True,
             bootstrap: int = DEFAULT_RESAMPLES, shared_prefix: bool = True) -> dict:
    """Evaluate `model` on `tasks`; returns {task: metrics} and writes everything under `out_dir`.

    `data_root` holds the benchmark files (see docs/evaluation.md); `image_root` defaults to
    `<data_root>/../images`. `max_new_tokens`, `do_sample`, `temperature` and `top_k` override the
    protocol's decoding (official: greedy; paper: the authors' sampling). `limit` keeps the first N
    questions of each task (of each MME subtask / POPE split); a dict gives
    it per task name (a task not in it: every question). `seed` seeds the demonstrations, the
    paper's VQAv2 subset and sampling. `bootstrap` resamples give each metric its 95% interval ("ci95";
    0: none). `shared_prefix=False` runs every prompt whole instead of sharing an image's prompt prefix among
    the questions about it (the same answers up to floating-point rounding).
    """
    if batch_size < 1:
        raise LntuneError(f"batch size must be at least 1, got {batch_size}")
    limits = limit if isinstance(limit, dict) else {}
    for value in (limits.values() if limits else [limit]):
        if value is not None and value < 1:
            raise LntuneError(f"--limit must be at least 1, got {value}")
    out_dir = Path(out_dir)
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise LntuneError(f"data root {data_root} is not a folder (expected mme/, vqav2/, coco/, flickr30k/, pope/ "
                          "in it; see docs/evaluation.md)")
    overrides = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "temperature": temperature, "top_k": top_k}
    task_objects = [get_task(name, data_root, image_root=image_root, protocol=protocol, seed=seed)
                    for name in parse_task_list(tasks)]
    # Read every task's files before generating anything: a missing file should fail in seconds, not hours.
    loaded = [(task, task.samples(limits.get(task.name) if limits else limit)) for task in task_objects]
    from lntune.eval.settled import keeps_prefixes

    can_stop_early = keeps_prefixes(processor.tokenizer)
    decodings = {task.name: resolve_decoding(task.decoding(), overrides, can_stop_early) for task, _ in loaded}
    out_dir.mkdir(parents=True, exist_ok=True)
    check_run_config(out_dir, {"protocol": protocol, "seed": seed, "dtype": dtype_name(model),
                               "decoding": {name: d.record() for name, d in decodings.items()}})

    metrics = _read_json_or_empty(out_dir / METRICS_FILE)
    timing = _read_json_or_empty(out_dir / TIMING_FILE)
    for task, samples in loaded:
        task.bootstrap = bootstrap
        started = time.perf_counter()
        answers, generated, unique = run_task(model, processor, task, samples, decodings[task.name], out_dir,
                                              batch_size=batch_size, seed=seed, progress=progress,
                                              shared_prefix=shared_prefix)
        seconds = time.perf_counter() - started
        timing[task.name] = {"generated": generated, "unique_requests": unique, "seconds": round(seconds, 3),
                             "questions_per_s": round(generated / seconds, 3) if generated and seconds else None,
                             "batch_size": batch_size}
        task.write_outputs(samples, answers, out_dir)
        metrics[task.name] = task.score(samples, answers, out_dir)
        write_json(out_dir / METRICS_FILE, metrics)
        write_json(out_dir / TIMING_FILE, timing)

    from lntune.eval.report import write_report

    write_report(out_dir / REPORT_FILE, [(model_name, metrics)], protocol=protocol)
    return {task.name: metrics[task.name] for task, _ in loaded}


def resolve_decoding(default: Decoding, overrides: dict, can_stop_early: bool = True) -> Decoding:
    """The protocol's decoding with the given (non-None) overrides applied; a settled answer ends a row early
    only with greedy decoding and when `can_stop_early` (the tokenizer allows it: lntune/eval/settled.py)."""
    decoding = replace(default, **{k: v for k, v in overrides.items() if v is not None})
    if decoding.do_sample or not can_stop_early:
        decoding = replace(decoding, stop_when_settled=False)
    if decoding.max_new_tokens < 1:
        raise LntuneError(f"--max-new-tokens must be at least 1, got {decoding.max_new_tokens}")
    if decoding.do_sample and decoding.temperature <= 0:
        raise LntuneError(f"--temperature must be above 0 when sampling, got {decoding.temperature}")
    return decoding


def check_run_config(out_dir: Path, config: dict) -> None:
    """Write <out>/eval_config.json, or refuse when an earlier run there used other settings."""
    path = out_dir / CONFIG_FILE
    if path.is_file():
        previous = _read_json_or_empty(path)
        for key in ("protocol", "seed", "dtype"):
            # A folder written before the precision was recorded has no "dtype"; it is recorded from now on.
            if key == "dtype" and key not in previous:
                continue
            if previous.get(key) != config[key]:
                raise LntuneError(f"{path}: this folder holds a run with {key}={previous.get(key)!r}, not "
                                  f"{config[key]!r}; use another --out or delete the folder")
        for name, decoding in config["decoding"].items():
            before = previous.get("decoding", {}).get(name)
            if before is not None and before != decoding:
                raise LntuneError(f"{path}: task {name} was decoded with {before}, not {decoding}; use another --out "
                                  f"or delete {out_dir / 'predictions' / (name + '.jsonl')}")
        config = {**config, "decoding": {**previous.get("decoding", {}), **config["decoding"]}}
    write_json(path, config)


def dtype_name(model) -> str:
    """The precision the model computes in, as eval_config.json records it ("float32", "bfloat16")."""
    return str(model.dtype).removeprefix("torch.")


def run_task(model, processor, task: Task, samples: list[Sample], decoding: Decoding, out_dir: Path,
             batch_size: int = 8, seed: int = 42, progress: bool = True, shared_prefix: bool = True
             ) -> tuple[dict[str, dict], int, int]:
    """Generate the answers `samples` still lack; returns ({id: record}, questions answered now, distinct
    requests generated for them)."""
    import torch
    from tqdm import tqdm

    prompts = {s.id: gen.render_prompt(processor, s.messages) for s in samples}
    jsonl = Path(out_dir) / "predictions" / f"{task.name}.jsonl"
    answers = load_predictions(jsonl, prompts)
    pending = [s for s in samples if s.id not in answers]
    if not pending:
        return answers, 0, 0
    requests = group_requests(pending, prompts, greedy=not decoding.do_sample)
    # Greedy decoding is deterministic: an (image, prompt) answered before a kill is not asked again.
    known = {} if decoding.do_sample else {(r["image"], r["prompt"]): r["text"] for r in answers.values()}
    answered = [r for r in requests if _request_key(r[0], prompts) in known]
    requests = [r for r in requests if _request_key(r[0], prompts) not in known]
    # Questions about one image together (they share a batch and its prompt prefix), longest first: similar
    # lengths share a batch (less padding), and an out-of-memory shows up at once.
    lengths = processor.tokenizer([prompts[r[0].id] for r in requests], add_special_tokens=False)["input_ids"]
    order = group_by_image([str(r[0].image) for r in requests], [len(ids) for ids in lengths])
    requests = [requests[i] for i in order]
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(samples), initial=len(samples) - len(pending), desc=task.name, unit="q",
               disable=not progress, dynamic_ncols=True)

    def write(f, batch, texts):
        for request, text in zip(batch, texts):
            for sample in request:
                record = {"id": sample.id, "image": str(sample.image), "prompt": prompts[sample.id], "text": text}
                answers[sample.id] = record
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
        bar.update(sum(len(request) for request in batch))

    try:
        with open(jsonl, "a", encoding="utf-8") as f:
            if answered:
                write(f, answered, [known[_request_key(r[0], prompts)] for r in answered])
            for start in range(0, len(requests), batch_size):
                batch = requests[start:start + batch_size]
                images = [open_image(r[0].image, r[0].id, task.name) for r in batch]
                texts = gen.generate_batch(
                    model, processor, [prompts[r[0].id] for r in batch], images,
                    max_new_tokens=decoding.max_new_tokens, do_sample=decoding.do_sample,
                    temperature=decoding.temperature, top_k=decoding.top_k,
                    settled=task.settled if decoding.stop_when_settled else None,
                    image_keys=[str(r[0].image) for r in batch] if shared_prefix else None,
                )
                write(f, batch, texts)
    finally:
        bar.close()
        model.train(was_training)
    return answers, len(pending), len(requests)


def group_requests(samples: list[Sample], prompts: dict[str, str], greedy: bool) -> list[list[Sample]]:
    """The generation requests for `samples`, in first-asked order: with greedy decoding the questions with the
    same image and prompt share one request (POPE's splits repeat their positive questions); when sampling,
    every question is its own draw."""
    if not greedy:
        return [[s] for s in samples]
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault(_request_key(sample, prompts), []).append(sample)
    return list(groups.values())


def _request_key(sample: Sample, prompts: dict[str, str]) -> tuple[str, str]:
    return str(sample.image), prompts[sample.id]


def load_predictions(path: Path, prompts: dict[str, str]) -> dict[str, dict]:
    """Records already in a task's JSONL, by id (only ids in `prompts`).

    A last line cut off by a kill is dropped (and removed from the file); a record whose prompt differs
    from today's (another model, chat template or protocol) stops the run instead of mixing answers.
    """
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records, good_bytes = {}, 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            good_bytes += len(line) + 1
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a partial write at the end: the kill came mid-line
                break
            raise LntuneError(f"{path}:{number}: not a JSON record; delete the line (or the file) to regenerate it") from None
        good_bytes += len(line) + 1
        if not isinstance(record, dict) or not {"id", "prompt", "text"} <= record.keys():
            raise LntuneError(f"{path}:{number}: expected a record with id, prompt and text")
        sample_id = str(record["id"])
        if sample_id in prompts:
            if record["prompt"] != prompts[sample_id]:
                raise LntuneError(f"{path}:{number}: sample {sample_id} was asked with another prompt (a different "
                                  "model, chat template, protocol or seed?); use another --out or delete the file")
            records[sample_id] = record
    if good_bytes < len(raw):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    elif raw and not raw.endswith(b"\n"):  # a complete last record whose newline was not written
        with open(path, "ab") as f:
            f.write(b"\n")
    return records


def open_image(path: Path, sample_id: str, task: str):
    """The image at `path` in RGB, or a LntuneError naming the task and the sample that asks about it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise LntuneError(f"{task}: cannot read the image of sample {sample_id}: {path} ({err})") from None


def _read_json_or_empty(path: Path) -> dict:
    from lntune.jsonio import load_json

    data = load_json(path, "an evaluation record") if path.is_file() else {}
    if not isinstance(data, dict):
        raise LntuneError(f"{path}: expected a JSON object; delete the file to write it afresh")
    return data
