"""The HTTP side of `lntune serve`: an OpenAI-compatible chat API and the web chat page, on Starlette.

    app = create_app(engine, image_root=None, max_image_bytes=10 * 2**20)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes: GET / (the chat page), GET /health, GET /v1/models, POST /v1/chat/completions (JSON, or server-sent
events in OpenAI's chunk format ending with `data: [DONE]` when `stream` is true). Every failure is an
OpenAI-style error object with a 4xx status (503 when the queue is full, 500 for a server fault, whose
traceback goes to the server's log only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from lntune.eval.generate import render_prompt
from lntune.serve.api_errors import ApiError, error_body
from lntune.serve.chat_request import DEFAULT_MAX_TOKENS, parse_chat_request
from lntune.serve.engine import Engine

PAGE = Path(__file__).with_name("page.html")
log = logging.getLogger("lntune.serve")


def create_app(engine: Engine, image_root: Path | None, max_image_bytes: int) -> Starlette:
    page = PAGE.read_text()
    started = int(time.time())

    async def index(request):
        return HTMLResponse(page)

    async def health(request):
        return JSONResponse({"status": "ok", "model": engine.model_id, "queued": engine.pending,
                             "max_queue": engine.max_queue})

    async def models(request):
        return JSONResponse({"object": "list", "data": [
            {"id": engine.model_id, "object": "model", "created": started, "owned_by": "lntune"}]})

    async def chat_completions(request):
        try:
            body = json.loads(await _read_body(request, limit=max_image_bytes * 4 // 3 + 2**20))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not valid JSON ({err})", code="invalid_json") from None
        job = await run_in_threadpool(parse_chat_request, body, engine.model_id, image_root, max_image_bytes)
        prompt = render_prompt(engine.processor, job.messages)
        prompt_tokens = await run_in_threadpool(engine.prompt_tokens, prompt, job.image)
        job.max_tokens = _max_tokens(engine, prompt_tokens, job.max_tokens)
        if not engine.reserve():
            raise ApiError(503, f"the server is busy: {engine.max_queue} requests are queued (--max-queue); "
                           "retry shortly", code="queue_full")
        reply = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": engine.model_id}
        if job.stream:
            return StreamingResponse(_stream(engine, prompt, job, prompt_tokens, reply), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        done = await asyncio.wrap_future(engine.submit(prompt, job, prompt_tokens))
        return JSONResponse({**reply, "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": done.text}, "logprobs": None,
             "finish_reason": done.finish_reason}], "usage": _usage(done)})

    return Starlette(
        routes=[Route("/", index), Route("/health", health), Route("/v1/models", models),
                Route("/v1/chat/completions", chat_completions, methods=["POST"])],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
    )


async def _read_body(request, limit: int) -> bytes:
    """The request body, refused (413) once it passes `limit` bytes: a base64 image at the size limit plus 1 MiB."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is over {limit:,} bytes (an image at --max-image-mb, base64, "
                           "plus 1 MiB of text)", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _max_tokens(engine: Engine, prompt_tokens: int, asked: int | None) -> int:
    """The answer's token limit: `asked`, or DEFAULT_MAX_TOKENS cut to the context's room; 400 past the context."""
    if not engine.context_length:
        return asked or DEFAULT_MAX_TOKENS
    room = engine.context_length - prompt_tokens
    if asked is None and room >= 1:
        return min(DEFAULT_MAX_TOKENS, room)
    if asked is None or asked > room:
        wanted = f" and max_tokens asks for {asked} more" if asked else ""
        raise ApiError(400, f"the conversation is {prompt_tokens} tokens (its image's included){wanted}: over the "
                       f"model's {engine.context_length}-token context", param="max_tokens" if asked else "messages",
                       code="context_length_exceeded")
    return asked


async def _stream(engine: Engine, prompt: str, job, prompt_tokens: int, reply: dict):
    """The answer as server-sent events: a role chunk, content chunks, the finish chunk, usage if asked, [DONE]."""
    loop, pieces, cancelled = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
    future = asyncio.wrap_future(engine.submit(prompt, job, prompt_tokens, cancelled=cancelled,
                                               on_text=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text)))
    # The worker queues its last piece before its future completes, so None comes after every piece.
    future.add_done_callback(lambda _: pieces.put_nowait(None))

    def chunk(delta: dict, finish_reason=None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**reply, "object": "chat.completion.chunk", "choices": [choice]})

    try:
        yield chunk({"role": "assistant", "content": ""})
        while (text := await pieces.get()) is not None:
            yield chunk({"content": text})
        try:
            done = future.result()
        except Exception:
            log.exception("generation failed")
            yield _event(error_body("the server failed while generating this answer; see its log", "server_error"))
        else:
            yield chunk({}, done.finish_reason)
            if job.include_usage:
                yield _event({**reply, "object": "chat.completion.chunk", "choices": [], "usage": _usage(done)})
        yield "data: [DONE]\n\n"
    finally:
        cancelled.set()  # a client that left stops its generation at the next token


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _usage(done) -> dict:
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens}


async def _api_error(request, err: ApiError):
    return JSONResponse(err.body(), status_code=err.status)


async def _http_error(request, err: HTTPException):
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return await _api_error(request, ApiError(err.status_code, message.get(err.status_code, str(err.detail))))


async def _server_error(request, err: Exception):
    log.error("request to %s failed", request.url.path, exc_info=err)
    return JSONResponse(error_body("the server failed on this request; see its log", "server_error"), status_code=500)
