"""`lntune world`: generate the built-in synthetic world and pretrain its vision tower.

    lntune world generate --out worlds/quick [--preset smoke|quick|full] [--seed N] [--force]
    lntune world vision --world worlds/quick --out towers/quick [--objective contrastive|classification] [--seed N]

See docs/world.md for the files a world holds.
"""


def register(subparsers):
    parser = subparsers.add_parser("world", help="the built-in synthetic world: generate it, train its vision tower")
    actions = parser.add_subparsers(dest="world_command", metavar="ACTION")
    actions.required = True

    gen = actions.add_parser("generate", help="write a world: images, training data, benchmark files")
    gen.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    gen.add_argument("--preset", default="quick", help="world size: smoke, quick (default) or full "
                                                       "(lntune/configs/presets/world.yaml)")
    gen.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    gen.add_argument("--force", action="store_true", help="replace --out if it already holds a world")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=run_generate)

    vis = actions.add_parser("vision", help="pretrain a small CLIP vision tower on a world's training images")
    vis.add_argument("--world", required=True, help="a generated world directory")
    vis.add_argument("--out", required=True, help="output directory (a Hugging Face model directory)")
    vis.add_argument("--objective", default="contrastive", choices=["contrastive", "classification"],
                     help="contrastive: aligned with language, like CLIP (default); classification: object labels "
                          "only, like an ImageNet ViT (the paper's Table 5)")
    vis.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    vis.add_argument("--steps", type=int, default=None, help="training steps (default: the world preset's)")
    vis.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPU cores)")
    vis.add_argument("--force", action="store_true", help="replace --out if it holds another vision tower")
    vis.add_argument("--quiet", action="store_true", help="no progress bar")
    vis.set_defaults(func=run_vision)


def run_generate(args) -> int:
    import shutil
    from pathlib import Path

    from lntune.errors import LntuneError
    from lntune.world.generate import generate_world
    from lntune.world.presets import get_preset

    get_preset(args.preset)  # an unknown name is refused before anything is written
    out = Path(args.out)
    if args.force and out.exists() and any(out.iterdir()):
        if not (out / "world.json").is_file():
            raise LntuneError(f"{out}: --force only replaces a world directory (no world.json here)")
        from lntune.ownership import claim_folder
        from lntune.world.generate import WORLD

        claim_folder(out, WORLD, legacy=("world.json",))  # a marked world holding other files is refused
        staged = out.parent / f".{out.name}.new"
        shutil.rmtree(staged, ignore_errors=True)  # left by an interrupted --force
        generate_world(staged, preset=args.preset, seed=args.seed, progress=not args.quiet)
        shutil.rmtree(out)
        staged.rename(out)
    else:
        generate_world(out, preset=args.preset, seed=args.seed, progress=not args.quiet)
    print(f"world ({args.preset}, seed {args.seed}) written to {out}")
    return 0


def run_vision(args) -> int:
    import json

    from lntune.world.vision_tower import train_tower_atomic

    out, trained = train_tower_atomic(args.world, args.out, objective=args.objective, seed=args.seed,
                                      steps=args.steps, progress=not args.quiet, force=args.force,
                                      threads=args.threads)
    record = json.loads((out / "tower.json").read_text(encoding="utf-8"))
    state = "trained" if trained else "already up to date"
    print(f"vision tower ({args.objective}, seed {args.seed}) {state}: {out}")
    for key, value in record["metrics"].items():
        print(f"  {key}: {value}")
    return 0
