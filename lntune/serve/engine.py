"""The loaded model and its generation queue: one answer at a time, on one worker thread, from a bounded queue.

    engine = Engine(model, processor, model_id="stage2-layernorm", max_queue=16)
    if engine.reserve():                       # False when max_queue requests are already waiting or running
        future = engine.submit(prompt, job, on_text=print)   # concurrent.futures.Future of a Completion

Answers come from `lntune.eval.generate.generate_tokens`, the call `lntune chat` makes (through
generate_batch), so a greedy answer is `lntune chat`'s for the same image and question. Requests run one after
another rather than batched: each keeps its own seed (sampling draws from torch's global RNG) and its answer
its own tokens. `on_text` gets the answer's new text as tokens arrive; the pieces add up to the final text.
"""

from __future__ import annotations

import copy
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from lntune.eval.generate import decode_answer, generate_tokens, stop_token_ids


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (max_tokens reached)


class GenerationCancelled(Exception):
    """Raised inside generation once the client that asked has gone."""


class Engine:
    def __init__(self, model, processor, model_id: str, max_queue: int):
        self.model, self.processor, self.model_id, self.max_queue = model, processor, model_id, max_queue
        self.context_length = int(getattr(model.config.get_text_config(), "max_position_embeddings", 0) or 0)
        self._stops = set(stop_token_ids(model, processor.tokenizer))
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lntune-generate")
        self._lock = threading.Lock()
        self._pending = 0  # reserved: waiting or running
        # Counting runs on request threads beside the worker, with its own processor: a fast tokenizer used from
        # two threads at once can fail ("Already borrowed") when one call sets padding.
        self._counter, self._counter_lock = copy.deepcopy(processor), threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def reserve(self) -> bool:
        """Take a place in the queue; False when it is full. `submit` gives the place back when its job ends."""
        with self._lock:
            if self._pending >= self.max_queue:
                return False
            self._pending += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._pending -= 1

    def prompt_tokens(self, prompt: str, image) -> int:
        """The prompt's length in tokens, its image's tokens included (what the model reads)."""
        with self._counter_lock:
            return int(self._counter(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1])

    def submit(self, prompt: str, job, prompt_tokens: int, on_text=None, cancelled: threading.Event | None = None) -> Future:
        """Queue one generation on a place taken with `reserve`; the Future's result is a Completion."""
        return self._worker.submit(self._generate, prompt, job, prompt_tokens, on_text, cancelled or threading.Event())

    def _generate(self, prompt, job, prompt_tokens, on_text, cancelled) -> Completion:
        import torch

        try:
            if cancelled.is_set():
                raise GenerationCancelled
            if not job.greedy:
                torch.manual_seed(job.seed if job.seed is not None else random.SystemRandom().randrange(2**63))
            streamer = AnswerStreamer(self.processor, self._stops, on_text, cancelled) if on_text else None
            row = generate_tokens(self.model, self.processor, [prompt], [job.image], max_new_tokens=job.max_tokens,
                                  do_sample=not job.greedy, temperature=job.temperature, top_p=job.top_p,
                                  streamer=streamer)[0]
            text = decode_answer(self.processor, row)
            if streamer is not None:
                streamer.finish(text)
            return Completion(text, prompt_tokens, len(row), "length" if len(row) >= job.max_tokens else "stop")
        finally:
            self.release()


class AnswerStreamer:
    """A transformers streamer (`put`, `end`) that hands `on_text` the answer's text as it grows.

    The text so far is decoded as `decode_answer` decodes the final answer (special tokens dropped, stripped), and
    only its growth is sent: trailing whitespace and half a multi-byte character wait for the next token."""

    def __init__(self, processor, stops: set[int], on_text, cancelled: threading.Event):
        self.processor, self.stops, self.on_text, self.cancelled = processor, stops, on_text, cancelled
        self.tokens: list[int] = []
        self.sent = ""
        self.prompt_seen = self.stopped = False

    def put(self, value) -> None:
        if self.cancelled.is_set():
            raise GenerationCancelled
        if not self.prompt_seen:  # generate() first puts the prompt's ids
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.stopped = self.stopped or token in self.stops
            if not self.stopped:
                self.tokens.append(token)
        self._send(decode_answer(self.processor, self.tokens).rstrip("\ufffd"))

    def end(self) -> None:
        pass

    def finish(self, text: str) -> None:
        """Send what the final answer has beyond what was sent."""
        self._send(text)

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.on_text(text[len(self.sent):])
            self.sent = text
