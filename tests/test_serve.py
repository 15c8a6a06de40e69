"""`lntune serve`: the OpenAI-compatible chat API on a tiny random LLaVA.

The `openai` client example of docs/serving.md, run unchanged against `lntune serve` (its base_url and image
swapped in), prints `lntune chat`'s greedy answer, streamed and not; 8 concurrent clients each get the answer
generate_batch gives their own image and question; streams follow OpenAI's chunk format; every bad request
gets its 4xx OpenAI error object; a full queue answers 503.
"""

import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from serve_helpers import data_url, image_message, post, running_server, save_tiny_model  # noqa: E402
from test_eval_helpers import color_image  # noqa: E402

from lntune.cli import main  # noqa: E402
from lntune.eval.generate import generate_batch, render_prompt  # noqa: E402
from lntune.eval.tasks.base import user_turn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["Is there a dog in the image?", "What color is the ball?", "Please provide a description of the picture.",
             "how many red squares are left of the circle?"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("serve") / "tiny-llava")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    color_image(2).save(root / "blue.png")
    return root


@pytest.fixture(scope="module")
def server(model_dir, image_root):
    with running_server(model_dir, image_root=image_root, max_queue=4) as (url, engine):
        yield url, engine


def _expected(engine, image, question, max_tokens=256):
    prompt = render_prompt(engine.processor, [user_turn(question)])
    return generate_batch(engine.model, engine.processor, [prompt], [image], max_new_tokens=max_tokens)[0]


def _ask(url, model, image_url, question, **options):
    return post(f"{url}/v1/chat/completions",
                {"model": model, "messages": [image_message(image_url, question)], **options})


def _stream_events(url, body):
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps({**body, "stream": True}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.read().decode()
    assert text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in text[:-2].split("\n\n")]


def _docs_example() -> str:
    match = re.search(r"## Talking to it with the `openai` client\n\n```python\n(.*?)```",
                      (REPO / "docs" / "serving.md").read_text(), re.S)
    return match.group(1)


@contextlib.contextmanager
def _lntune_serve(*args):
    """`lntune serve ... --port 0` in its own process; yields its base URL, stops it with Ctrl-C (SIGINT)."""
    proc = subprocess.Popen([sys.executable, "-m", "lntune.cli", "serve", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("lntune serve: "), line + proc.stderr.read()[-3000:]
        yield re.search(r"http://\S+:\d+", line).group(0)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_docs_openai_example_prints_lntune_chats_answer(model_dir, tmp_path, capsys):
    image = tmp_path / "photo.png"
    color_image(4).save(image)
    code = _docs_example()
    question = re.search(r'"text": "([^"]+)"', code).group(1)
    assert main(["chat", "--model", str(model_dir), "--image", str(image), "--max-new-tokens", "64", question]) == 0
    chat_answer = capsys.readouterr().out.strip()
    assert chat_answer

    with _lntune_serve("--model", str(model_dir)) as url:
        assert url.startswith("http://127.0.0.1:")  # the default host: this machine only
        assert code.count('"http://127.0.0.1:8000/v1"') == 1 and code.count('IMAGE = "photo.png"') == 1
        code = code.replace('"http://127.0.0.1:8000/v1"', repr(f"{url}/v1")).replace('"photo.png"', repr(str(image)))
        exec(compile(code, "docs/serving.md", "exec"), {})
    plain, usage, streamed, end = capsys.readouterr().out.split("\n")  # not splitlines: answers of random weights
    assert end == ""                                                    # may hold other line breaks (U+2028, ...)
    assert plain == chat_answer and streamed == chat_answer
    prompt_tokens, completion_tokens = map(int, usage.split())
    assert prompt_tokens > 16  # the image is 16 tokens of it
    assert 1 <= completion_tokens <= 64


def test_eight_concurrent_clients_each_get_their_own_answer(server):
    url, engine = server
    asks = [(color_image(i), QUESTIONS[i % len(QUESTIONS)]) for i in range(8)]
    expected = [_expected(engine, image, question, max_tokens=24) for image, question in asks]
    assert len(set(expected)) >= 4  # different images and questions: mixed-up answers would show
    answers = [None] * 8

    def client(i):
        body = {"model": engine.model_id, "messages": [image_message(data_url(asks[i][0]), asks[i][1])],
                "max_tokens": 24}
        if i % 2:  # half of them stream
            events = _stream_events(url, body)
            answers[i] = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
        else:
            status, reply = post(f"{url}/v1/chat/completions", body)
            answers[i] = reply["choices"][0]["message"]["content"] if status == 200 else reply

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    with _more_room(engine, 8):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert answers == expected


@contextlib.contextmanager
def _more_room(engine, places):
    old, engine.max_queue = engine.max_queue, places
    try:
        yield
    finally:
        engine.max_queue = old


def test_stream_is_openai_chunks_ending_with_done(server):
    url, engine = server
    image, question = color_image(1), QUESTIONS[1]
    body = {"model": engine.model_id, "messages": [image_message(data_url(image), question)], "max_tokens": 12,
            "stream_options": {"include_usage": True}}
    events = _stream_events(url, body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *content, finish, usage = chunks[1:]
    streamed = "".join(c["choices"][0]["delta"]["content"] for c in content)
    status, reply = post(f"{url}/v1/chat/completions", {**body, "stream_options": None})
    assert status == 200 and streamed == reply["choices"][0]["message"]["content"] == _expected(engine, image, question, 12)
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == reply["choices"][0]["finish_reason"]
    assert usage["choices"] == [] and usage["usage"] == reply["usage"]
    prompt = render_prompt(engine.processor, [user_turn(question)])
    tokens = engine.processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
    assert reply["usage"]["prompt_tokens"] == tokens
    generated = reply["usage"]["completion_tokens"]
    assert reply["usage"]["total_tokens"] == tokens + generated and 1 <= generated <= 12
    assert reply["choices"][0]["finish_reason"] == ("length" if generated == 12 else "stop")


def test_image_file_under_image_root_answers_like_its_data_url(server, image_root):
    url, engine = server
    by_url = _ask(url, engine.model_id, data_url(color_image(2)), QUESTIONS[0], max_tokens=8)
    by_path = _ask(url, engine.model_id, "blue.png", QUESTIONS[0], max_tokens=8)
    by_file_url = _ask(url, engine.model_id, f"file://{image_root / 'blue.png'}", QUESTIONS[0], max_tokens=8)
    assert by_url[0] == by_path[0] == by_file_url[0] == 200
    assert by_url[1]["choices"] == by_path[1]["choices"] == by_file_url[1]["choices"]


def test_seeded_sampling_repeats(server):
    url, engine = server
    options = dict(max_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    first = _ask(url, engine.model_id, data_url(color_image(3)), QUESTIONS[2], **options)
    again = _ask(url, engine.model_id, data_url(color_image(3)), QUESTIONS[2], **options)
    assert first[0] == again[0] == 200 and first[1]["choices"] == again[1]["choices"]


def _png_bytes(size):
    buffer = io.BytesIO()
    color_image(0).save(buffer, format="PNG")
    return buffer.getvalue() + b"\0" * (size - len(buffer.getvalue()))


BAD_REQUESTS = {
    "malformed JSON": (b'{"model": "tiny-llava", "messages": [', 400, "invalid_json", None),
    "unknown model": ({"model": "gpt-4o"}, 404, "model_not_found", "model"),
    "no image": ({"messages": [{"role": "user", "content": "Is there a dog?"}]}, 400, "image_required", "messages"),
    "two images": ({"messages": [image_message(data_url(color_image(0)), "a"), image_message(data_url(color_image(1)), "b")]},
                   400, "too_many_images", "messages"),
    "image over the size limit": ({"image": "data:image/png;base64," + base64.b64encode(_png_bytes(2**20 + 10)).decode()},
                                  413, "image_too_large", "messages[].content[].image_url"),
    "non-image data URL": ({"image": "data:text/plain;base64,aGVsbG8="}, 400, "invalid_image_url",
                           "messages[].content[].image_url"),
    "data URL that is not an image": ({"image": "data:image/png;base64," + base64.b64encode(b"hello").decode()},
                                      400, "invalid_image", "messages[].content[].image_url"),
    "path outside --image-root": ({"image": "../outside.png"}, 403, "image_path_outside_root",
                                  "messages[].content[].image_url"),
    "absolute path outside --image-root": ({"image": "/etc/hostname"}, 403, "image_path_outside_root",
                                           "messages[].content[].image_url"),
    "remote URL": ({"image": "https://example.com/cat.png"}, 400, "unsupported_image_url",
                   "messages[].content[].image_url"),
    "request body over the limit": (b" " * (2**20 * 4 // 3 + 2**20 + 1), 413, "request_too_large", None),
    "too many tokens": ({"max_tokens": 2030}, 400, "context_length_exceeded", "max_tokens"),
    "temperature not a number": ({"temperature": "hot"}, 400, "invalid_value", "temperature"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_its_openai_error_object(server, case):
    url, engine = server
    request, status, code, param = BAD_REQUESTS[case]
    if isinstance(request, bytes):
        got = post(f"{url}/v1/chat/completions", None, raw=request)
    else:
        request = dict(request)
        image = request.pop("image", data_url(color_image(0)))
        body = {"model": engine.model_id, "messages": [image_message(image, "Is there a dog?")], **request}
        got = post(f"{url}/v1/chat/completions", body)
    assert got[0] == status
    error = got[1]["error"]
    assert set(got[1]) == {"error"} and set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"] and "Traceback" not in error["message"] and "\n" not in error["message"]


def test_unknown_route_and_models_and_health(server):
    url, engine = server
    status, body = post(f"{url}/v1/completions", {"prompt": "hi"})
    assert status == 404 and body["error"]["type"] == "not_found_error"
    with urllib.request.urlopen(f"{url}/v1/models") as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["tiny-llava"]
    with urllib.request.urlopen(f"{url}/health") as response:
        assert json.loads(response.read()) == {"status": "ok", "model": "tiny-llava", "queued": 0, "max_queue": 4}
    with urllib.request.urlopen(f"{url}/") as response:
        assert "<title>lntune chat</title>" in response.read().decode()


def test_full_queue_answers_503_then_recovers(server):
    url, engine = server
    for _ in range(engine.max_queue):  # every place taken, as by requests waiting for the model
        assert engine.reserve()
    try:
        with urllib.request.urlopen(f"{url}/health") as response:
            assert json.loads(response.read())["queued"] == engine.max_queue
        status, body = _ask(url, engine.model_id, data_url(color_image(0)), QUESTIONS[0], max_tokens=4)
        assert status == 503 and body["error"]["code"] == "queue_full"
    finally:
        for _ in range(engine.max_queue):
            engine.release()
    status, body = _ask(url, engine.model_id, data_url(color_image(0)), QUESTIONS[0], max_tokens=4)
    assert status == 200 and body["choices"][0]["message"]["content"] == _expected(engine, color_image(0), QUESTIONS[0], 4)


def test_port_in_use_is_one_line_error(model_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(model_dir), "--port", str(port)]) == 2
    assert capsys.readouterr().err == f"lntune: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
