"""`lntune quickstart`: the main job on the embedded default, offline (what `make demo` runs)."""


def register(subparsers):
    parser = subparsers.add_parser("quickstart", help="world -> vision tower -> stage 1 -> LayerNorm stage 2 -> evaluation")
    parser.add_argument("--preset", default="quick",
                        help="quick (about 10 min on 2 CPU cores with bf16, 15 in float32) or smoke (~3 min); "
                             "lntune/configs/presets/quickstart.yaml lists them")
    parser.add_argument("--out", default="runs/quickstart", help="output directory")
    parser.add_argument("--train-tower", action="store_true",
                        help="train the world's vision tower here (about 100 s on 2 cores) instead of using the "
                             "one lntune ships pretrained on the quick world")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lntune.quickstart import get_preset, quickstart

    get_preset(args.preset)  # an unknown name is refused before anything is written
    quickstart(args.preset, Path(args.out), train_tower=args.train_tower)
    return 0
