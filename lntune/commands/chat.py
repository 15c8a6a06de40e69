"""`lntune chat`: answer one question about one image.

    lntune chat --model runs/ln --image photo.jpg "What is in the picture?"
    lntune chat --model runs/ln --image photo.jpg --sample --temperature 0.7 "Describe it."

The prompt is the model's chat template with "<image>\\n" + question as the user turn, exactly as
`lntune eval` asks; decoding is greedy unless --sample.
"""

from lntune.errors import LntuneError


def register(subparsers):
    parser = subparsers.add_parser("chat", help="answer one question about one image")
    parser.add_argument("question", help="the question (quote it)")
    parser.add_argument("--model", required=True, help="an HF LLaVA directory or an lntune run directory")
    parser.add_argument("--image", required=True, help="an image file (jpg, png, ...)")
    parser.add_argument("--system", help="an optional system message")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit (default: 256)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default: 0.7)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample")
    parser.add_argument("--show-prompt", action="store_true", help="print the rendered prompt before the answer")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lntune.model.load import load_for_inference
    from lntune.eval.generate import generate_batch, render_prompt
    from lntune.eval.tasks.base import user_turn

    image_path = Path(args.image)
    if not image_path.is_file():
        raise LntuneError(f"--image {image_path}: no such file")
    if args.max_new_tokens < 1:
        raise LntuneError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    image = _open(image_path)
    model, processor = load_for_inference(args.model, args.dtype, args.device)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [user_turn(args.question)]
    prompt = render_prompt(processor, messages)
    if args.show_prompt:
        print(prompt)
    if args.sample:
        import torch

        torch.manual_seed(args.seed)
    answer = generate_batch(model, processor, [prompt], [image], max_new_tokens=args.max_new_tokens,
                            do_sample=args.sample, temperature=args.temperature)[0]
    print(answer)
    return 0


def _open(path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise LntuneError(f"--image {path}: not a readable image ({err})") from None
