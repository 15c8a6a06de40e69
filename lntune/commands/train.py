"""`lntune train`: one training stage from a YAML config, with dotted key=value overrides.

    lntune train --config configs/world/smoke.yaml output_dir=runs/smoke train.lr=2e-3
    lntune train --config configs/world/smoke.yaml --resume     # continue from the newest checkpoint
"""


def register(subparsers):
    parser = subparsers.add_parser("train", help="train one stage (connector pretraining or instruction tuning)")
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=1e-3")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.pipeline import ready_config
    from lntune.train.loop import train

    config = ready_config(args.config, args.overrides)  # builds the world and vision tower it uses, once (cached)
    train(config, resume=args.resume)
    return 0
