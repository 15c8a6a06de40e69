"""`lntune serve`: an OpenAI-compatible chat server and a web chat page for one model.

    lntune serve --model runs/quickstart/stage2-layernorm                    # http://127.0.0.1:8000/
    lntune serve --model runs/x --host 0.0.0.0 --port 9000 --image-root photos

The model loads once; POST /v1/chat/completions answers with it (docs/serving.md), GET / is the chat page.
"""

from lntune.errors import LntuneError


def register(subparsers):
    parser = subparsers.add_parser("serve", help="serve a model: OpenAI-compatible chat API and a web chat page")
    parser.add_argument("--model", required=True, help="an HF LLaVA directory (e.g. an export) or an lntune run directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this host only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    parser.add_argument("--image-root", help="let requests name image files inside this folder (default: data: URLs only)")
    parser.add_argument("--max-queue", type=int, default=16,
                        help="requests waiting or running before new ones get 503 (default: 16)")
    parser.add_argument("--max-image-mb", type=float, default=10.0, help="largest image accepted, in MiB (default: 10)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lntune.model.load import load_for_inference
    from lntune.serve.app import create_app
    from lntune.serve.engine import Engine

    image_root = Path(args.image_root) if args.image_root else None
    if image_root is not None and not image_root.is_dir():
        raise LntuneError(f"--image-root {image_root}: no such folder")
    if args.max_queue < 1:
        raise LntuneError(f"--max-queue must be at least 1, got {args.max_queue}")
    if args.max_image_mb <= 0:
        raise LntuneError(f"--max-image-mb must be positive, got {args.max_image_mb}")
    sock = listening_socket(args.host, args.port)  # before loading: a taken port fails at once
    model, processor = load_for_inference(args.model, args.dtype, args.device)
    engine = Engine(model, processor, model_id=Path(args.model).resolve().name, max_queue=args.max_queue)
    app = create_app(engine, image_root, max_image_bytes=int(args.max_image_mb * 2**20))
    port = sock.getsockname()[1]  # the one the system chose for --port 0
    print(f"lntune serve: {engine.model_id} at http://{args.host}:{port}/ (OpenAI API under /v1; Ctrl-C stops)",
          flush=True)
    serve(app, sock)
    return 0


def listening_socket(host: str, port: int):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise LntuneError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(128)
    return sock


def serve(app, sock) -> None:
    """Run `app` with uvicorn on the bound socket until Ctrl-C (or the server's `should_exit`)."""
    import uvicorn

    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again: a normal stop for a server
        pass
