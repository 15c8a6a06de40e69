"""`lntune export`: a run as a full HF checkpoint (weights + processor), or as a peft adapter on its base.

    lntune export --model runs/stage2 --out exported/                       # LlavaForConditionalGeneration
    lntune export --model runs/stage2 --format peft --out adapter/          # PeftModel.from_pretrained(base, ...)

--out must be new, empty or an earlier export holding only what lntune wrote there, and may not be the model,
its base or a folder above either (lntune/ownership.py); one export at a time writes a folder.
"""

import contextlib


def register(subparsers):
    parser = subparsers.add_parser("export", help="write a run as a full Hugging Face checkpoint or a peft adapter")
    parser.add_argument("--model", required=True, help="an lntune run directory (or any model lntune loads)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--format", choices=("hf", "peft"), default="hf",
                        help="hf: full checkpoint (default); peft: LN-tuning or LoRA adapter for the run's base")
    parser.add_argument("--base-out", help="with --format peft: also write the base model (full HF) here")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.errors import LntuneError

    if args.base_out and args.format != "peft":
        raise LntuneError("--base-out goes with --format peft")
    with owned_outputs(args.model, {"--out": args.out, "--base-out": args.base_out}):
        if args.format == "peft":
            from lntune.model.peft_export import export_peft

            out = export_peft(args.model, args.out, base_out=args.base_out)
            print(f"lntune: peft adapter written to {out} (load with peft.PeftModel.from_pretrained(base, '{out}'))")
            return 0
        from lntune.model.export import export_hf

        out = export_hf(args.model, args.out)
    print(f"lntune: exported to {out} (load with transformers.LlavaForConditionalGeneration.from_pretrained)")
    return 0


@contextlib.contextmanager
def owned_outputs(model, outputs: dict):
    """Hold the export lock of each output folder ({option: path}, None skipped), each checked free to write."""
    from pathlib import Path

    from lntune.locks import hold_lock
    from lntune.model.export import EXPORT
    from lntune.ownership import claim_folder, model_inputs, refuse_overlap

    outputs = {option: Path(path) for option, path in outputs.items() if path}
    inputs = model_inputs(model)
    with contextlib.ExitStack() as stack:
        for option, path in outputs.items():
            others = {f"the {other} folder": folder for other, folder in outputs.items() if other != option}
            refuse_overlap(path, {**inputs, **others}, option)
            stack.enter_context(hold_lock(path, EXPORT, inside=False))
            claim_folder(path, EXPORT, option=option)
        yield
