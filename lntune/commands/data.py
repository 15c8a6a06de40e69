"""`lntune data check`: validate a LLaVA JSON data file (and its images) before training on it.

    lntune data check --data world/instruct/mixed.json --images world/images [--model DIR] [--json]

Prints per-type counts, length statistics and one line per problem naming the sample; exits 1 when
anything is wrong, 0 when the file is clean.
"""


def register(subparsers):
    parser = subparsers.add_parser("data", help="inspect and validate training data")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="validate a LLaVA JSON file: counts, lengths, one line per problem")
    check.add_argument("--data", required=True, help="LLaVA JSON (or JSON lines) file")
    check.add_argument("--images", default=None, help="image folder the samples' \"image\" paths are relative to")
    check.add_argument("--model", default=None,
                       help="model or processor directory: token lengths and label masking with its tokenizer")
    check.add_argument("--max-length", type=int, default=None, help="count samples over this many tokens")
    check.add_argument("--headers-only", action="store_true", help="read image headers only (faster, less thorough)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run)


def load_tokenizer(path):
    """A LLaVA processor from `path` if it has one, else its tokenizer; LntuneError when neither loads."""
    from pathlib import Path

    from lntune.errors import LntuneError

    if not Path(path).is_dir():
        raise LntuneError(f"--model {path}: not a directory")
    from transformers import AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(path)
        if hasattr(processor, "image_processor") and hasattr(processor, "tokenizer"):
            return processor
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LntuneError(f"--model {path}: no tokenizer found ({err})") from None


def run(args) -> int:
    import json

    from lntune.data.check import check_dataset

    tokenizer = load_tokenizer(args.model) if args.model else None
    report = check_dataset(args.data, image_folder=args.images, tokenizer=tokenizer,
                           max_length=args.max_length, decode_images=not args.headers_only)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1
