"""Per-step statistics of the gradients of chosen decoder layers' norms (the paper's Fig. 4 / A3 / A4).

Enabled with `train.track_grads: [layer, ...]`; rows go to output_dir/grads.jsonl:
`{"step", "layer", "norm", "mean", "std", "min", "max", "quantiles": [q05, q25, q50, q75, q95], "hist": {...}}`.
Only norms that train have gradients: use a strategy that trains them (finetune, layernorm, ...).
"""

import json
from pathlib import Path

import torch

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HIST_BINS = 21


def tracked_norm_params(model, layers: list[int]) -> dict[tuple[int, str], torch.nn.Parameter]:
    """{(layer, norm name): weight} for the chosen layers' normalization modules that train."""
    from lntune.strategies import decoder_norm_modules

    wanted = {}
    for module_name in decoder_norm_modules(model):
        parts = module_name.split(".")
        layer = int(parts[parts.index("layers") + 1])
        if layer in layers:
            weight = model.get_submodule(module_name).weight
            if weight.requires_grad:
                wanted[(layer, parts[-1])] = weight
    return wanted


class GradRecorder:
    def __init__(self, model, layers: list[int], path: Path, enabled: bool = True):
        self.params = tracked_norm_params(model, layers)
        self.path = path
        self.enabled = enabled and bool(self.params)
        if enabled and layers and not self.params:
            print(f"lntune: track_grads: none of the norms of layers {layers} train under this strategy; nothing recorded")

    def record(self, step: int) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            for (layer, norm), param in self.params.items():
                if param.grad is not None:
                    f.write(json.dumps({"step": step, "layer": layer, "norm": norm, **grad_summary(param.grad)}) + "\n")


def grad_summary(grad: torch.Tensor) -> dict:
    g = grad.detach().float().flatten().cpu()
    lo, hi = float(g.min()), float(g.max())
    counts = torch.histc(g, bins=HIST_BINS, min=lo, max=hi if hi > lo else lo + 1e-12)
    return {
        "mean": float(g.mean()), "std": float(g.std()) if g.numel() > 1 else 0.0, "min": lo, "max": hi,
        "quantiles": [float(q) for q in torch.quantile(g, torch.tensor(QUANTILES))],
        "hist": {"min": lo, "max": hi, "counts": [int(c) for c in counts]},
    }
