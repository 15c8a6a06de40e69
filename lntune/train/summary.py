"""The start-up table of what trains, per group of parameters (counts and % of the whole model)."""

GROUPS = (
    ("vision tower", lambda n: "vision_tower." in n),
    ("projector", lambda n: "multi_modal_projector." in n),
    ("embeddings + head", lambda n: ".embed_tokens." in n or n.startswith("lm_head.")),
    ("LoRA adapters", lambda n: "lora_" in n),
    ("decoder norms", lambda n: ".layers." in n and "norm" in n.rsplit(".", 2)[-2]),
    ("other LLM", lambda n: True),
)


def group_counts(model) -> list[tuple[str, int, int]]:
    """[(group, trainable, total)] with each tensor in the first group that matches it."""
    seen, rows = set(), {name: [0, 0] for name, _ in GROUPS}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        group = next(g for g, match in GROUPS if match(name))
        size = getattr(param, "ds_numel", None) or param.numel()  # DeepSpeed ZeRO-3 leaves an empty placeholder
        rows[group][1] += size
        rows[group][0] += size if param.requires_grad else 0
    return [(g, tr, tot) for g, (tr, tot) in rows.items() if tot]


def print_trainable_summary(model, spec) -> None:
    total = sum(tot for _, _, tot in group_counts(model))
    print(f"lntune: strategy {spec.name} — what trains:")
    for group, trainable, size in group_counts(model):
        print(f"  {group:<18} {trainable:>14,} / {size:>14,}  ({100 * trainable / total:.4f}% of all)")
    trainable = sum(tr for _, tr, _ in group_counts(model))
    print(f"  {'total':<18} {trainable:>14,} / {total:>14,}  ({100 * trainable / total:.4f}%)")
