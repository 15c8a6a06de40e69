"""Layer-to-layer cosine similarity of an MLLM's LLM hidden states (the paper's Sec. 5.2, Fig. 3, Table 6).

The hidden state of layer l is the output of decoder block l (the residual stream it hands to block l+1,
before the final norm). For every sample and every non-padding position t (image and text tokens alike):

    S[i, j] = mean over t of cos(h_i[t], h_j[t])        one L x L matrix per sample
    matrix  = mean over samples of S                     (each sample counts once, whatever its length)
    mean_offdiag = mean of matrix[i, j] over the L(L-1)/2 pairs i < j     (the paper's Table 6 number)

docs/analysis.md says why this definition and how to reproduce the paper's numbers.

    lntune analyze similarity --model runs/ln --compare runs/ft --data llava.json --images IMAGES --out analysis/
    from lntune.analysis import layer_similarity
    result = layer_similarity(model, processor, "llava.json", "images/", samples=32, seed=0, batch_size=8)
"""

from __future__ import annotations

import re

import torch

from lntune.errors import LntuneError

_DECODER_LAYER = re.compile(r"(^|\.)language_model\.layers\.(\d+)$")


def cosine_similarity_matrices(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample layer x layer cosine similarity, averaged over the sample's unmasked positions.

    hidden: (L, B, T, D) hidden states of L layers; mask: (B, T), true/1 at real (non-padding) tokens.
    Returns (B, L, L) in float32. A sample without any unmasked position is an error.
    """
    if hidden.dim() != 4 or mask.shape != hidden.shape[1:3]:
        raise ValueError(f"expected hidden (L, B, T, D) and mask (B, T), got {tuple(hidden.shape)} and {tuple(mask.shape)}")
    mask = mask.to(torch.float32)
    counts = mask.sum(dim=1)
    if bool((counts == 0).any()):
        raise ValueError("a sample has no unmasked position")
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)
    weighted = unit * mask[None, :, :, None]  # padding contributes nothing
    sums = torch.einsum("ibtd,jbtd->bij", weighted, unit)
    return sums / counts[:, None, None]


def mean_offdiag(matrix) -> float:
    """The mean of a symmetric matrix over its distinct pairs i < j (the paper's 'average layer similarity')."""
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    n = matrix.shape[0]
    if n < 2:
        raise ValueError("a similarity matrix needs at least 2 layers")
    rows, cols = torch.triu_indices(n, n, offset=1)
    return float(matrix[rows, cols].mean())


def decoder_layers(model) -> list[torch.nn.Module]:
    """The LLM's decoder blocks, in order (works for plain HF LLaVA models and lntune's LoRA-injected ones)."""
    found = {}
    for name, module in model.named_modules():
        match = _DECODER_LAYER.search(name)
        if match:
            found[int(match.group(2))] = module
    if not found:
        raise LntuneError(f"{type(model).__name__}: no decoder layers named '...language_model.layers.N' found")
    return [found[i] for i in sorted(found)]


def sample_similarity(model, batch: dict) -> torch.Tensor:
    """(B, L, L) similarity matrices of one collated batch (LlavaCollator output), on the model's device."""
    layers = decoder_layers(model)
    captured: list[torch.Tensor | None] = [None] * len(layers)

    def keep(index):
        def hook(module, inputs, output):
            captured[index] = output[0] if isinstance(output, tuple) else output
        return hook

    device = next(model.parameters()).device
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    half = next((d for d in (torch.bfloat16, torch.float16) if d in dtypes), None)
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "pixel_values")}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(half or torch.float32)
    # a run loaded in bf16 keeps its trained tensors in fp32: let autocast make the dtypes meet
    autocast = torch.autocast(device.type, dtype=half, enabled=half is not None and len(dtypes) > 1)
    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad(), autocast:
            model(**inputs, use_cache=False, logits_to_keep=1)  # the head's output is not needed
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():  # outside autocast, which would run the einsum in bf16
        return cosine_similarity_matrices(torch.stack(captured), inputs["attention_mask"].bool())


def layer_similarity(model, processor, data_path, image_folder, samples: int = 32, seed: int = 0,
                     batch_size: int = 8, *, max_length: int = 2048, progress: bool = True) -> dict:
    """The layer x layer similarity of `model` on a seeded subset of `samples` LLaVA samples.

    Returns {"matrix": [[float]] (L x L), "mean_offdiag": float, "layers": L, "samples": n, "tokens": total
    non-padding positions}. Samples are the dataset's seeded subset (LlavaDataset max_samples/seed), read
    in file order; whole conversations (questions and answers) are fed, as in training.
    """
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from lntune.data.collate import LlavaCollator
    from lntune.data.dataset import LlavaDataset

    if samples < 1 or batch_size < 1:
        raise LntuneError(f"samples and batch_size must be positive, got {samples} and {batch_size}")
    dataset = LlavaDataset(data_path, image_folder, processor, max_length=max_length, max_samples=samples, seed=seed)
    if len(dataset) == 0:
        raise LntuneError(f"{data_path}: no usable sample (all longer than max_length={max_length}?)")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        collate_fn=LlavaCollator(processor.tokenizer.pad_token_id))
    was_training = model.training
    model.eval()
    total, count, tokens = None, 0, 0
    try:
        with tqdm(total=len(dataset), desc="layer similarity", unit="sample", disable=not progress) as bar:
            for batch in loader:
                per_sample = sample_similarity(model, batch).double().cpu()
                total = per_sample.sum(0) if total is None else total + per_sample.sum(0)
                count += per_sample.shape[0]
                tokens += int(batch["attention_mask"].sum())
                bar.update(per_sample.shape[0])
    finally:
        model.train(was_training)
    matrix = total / count
    return {"matrix": matrix.tolist(), "mean_offdiag": mean_offdiag(matrix), "layers": matrix.shape[0],
            "samples": count, "tokens": tokens}
