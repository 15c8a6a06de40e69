"""Shared by the `lntune serve` tests: a tiny random LLaVA saved as a model directory, a server for it on a free
port in a background thread, and requests to it.

    with running_server(model_dir) as (base_url, engine): ...
"""

import base64
import contextlib
import io
import json
import threading
import time
import urllib.error
import urllib.request

from test_eval_helpers import tiny_llava

from lntune.commands.serve import listening_socket
from lntune.model.load import load_for_inference
from lntune.serve.app import create_app
from lntune.serve.engine import Engine


def save_tiny_model(path):
    """tiny_llava with a 2048-token context: room for a few turns of 256-token answers."""
    model, processor = tiny_llava(seed=1)
    model.config.text_config.max_position_embeddings = 2048
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@contextlib.contextmanager
def running_server(model_dir, image_root=None, max_queue=16, max_image_bytes=2**20):
    """(base URL, engine) of a server on 127.0.0.1 and a port the system picks, shut down on exit."""
    import uvicorn

    model, processor = load_for_inference(model_dir, "float32", "cpu")
    engine = Engine(model, processor, model_id=model_dir.name, max_queue=max_queue)
    app = create_app(engine, image_root, max_image_bytes)
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", engine
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def data_url(image, fmt="PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(url: str, question: str) -> dict:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                        {"type": "text", "text": question}]}


def post(url: str, body, raw: bytes | None = None):
    """(status, decoded JSON body) of a POST; `raw` sends bytes as they are."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
