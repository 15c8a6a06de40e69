"""`lntune strategies`: list the tuning strategies, one line each on what trains."""


def register(subparsers):
    parser = subparsers.add_parser("strategies", help="list the tuning strategies")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.strategies import describe_strategies

    for name, description in describe_strategies():
        print(f"{name:<18} {description}")
    print("\nThe vision tower always stays frozen. include_base=false drops projector/embeddings/head (Table 4 ablations).")
    return 0
