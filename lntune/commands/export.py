"""`lntune export`: a full HF checkpoint (weights + processor) from a run, loadable with plain transformers.

    lntune export --model runs/stage2 --out exported/
"""


def register(subparsers):
    parser = subparsers.add_parser("export", help="write a full Hugging Face checkpoint from an lntune run")
    parser.add_argument("--model", required=True, help="an lntune run directory (or any model lntune loads)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.model.export import export_hf

    out = export_hf(args.model, args.out)
    print(f"lntune: exported to {out} (load with transformers.LlavaForConditionalGeneration.from_pretrained)")
    return 0
