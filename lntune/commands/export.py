"""`lntune export`: a run as a full HF checkpoint (weights + processor), or as a peft adapter on its base.

    lntune export --model runs/stage2 --out exported/                       # LlavaForConditionalGeneration
    lntune export --model runs/stage2 --format peft --out adapter/          # PeftModel.from_pretrained(base, ...)
"""


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

    if args.format == "peft":
        from lntune.model.peft_export import export_peft

        out = export_peft(args.model, args.out, base_out=args.base_out)
        print(f"lntune: peft adapter written to {out} (load with peft.PeftModel.from_pretrained(base, '{out}'))")
        return 0
    if args.base_out:
        raise LntuneError("--base-out goes with --format peft")
    from lntune.model.export import export_hf

    out = export_hf(args.model, args.out)
    print(f"lntune: exported to {out} (load with transformers.LlavaForConditionalGeneration.from_pretrained)")
    return 0
