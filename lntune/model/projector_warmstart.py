"""Warm start for a fresh linear projector from the stage-1 captions: align image tokens with caption words.

A randomly initialised projector feeds the frozen LLM image tokens that look like no word; the language-model
loss then needs many thousands of caption steps before the LLM can read them (LLaVA's stage 1 takes 558K
pairs). On a small budget the projector learns the caption *format* long before it learns to name what it
sees. This warm start uses the same (image, caption) pairs, and nothing else, to put image tokens next to the
words the LLM already reads, before the usual stage-1 training:

- image side: the frozen vision tower's patch tokens (the layer the projector reads), through the projector;
- text side: the frozen LLM's input embeddings of the caption's tokens, weighted by inverse document
  frequency over the captions (content words count; "a", "the", "in" hardly do);
- score of an (image, caption) pair: for each caption token, its best cosine with any image token, averaged
  with those weights (late interaction, as FILIP does for CLIP); a symmetric contrastive loss over the batch
  makes each image score its own caption highest, and a second term (weight `match_weight`) raises each
  image's score with its own caption towards 1, so that an image token becomes nearly the word it shows
  rather than only nearer to it than to other words.

The contrastive phase leaves each image token between several words of its caption (an object's token between
its colour, its size and its name). A second phase sharpens it by self-training, still on the captions alone:
every image token is assigned the word of its own caption it is already closest to, and the projector is refitted
by ridge regression to put each token onto its assigned word's embedding; a few rounds settle. On the world's
tower this raises the cosine of object tokens with their category word from ~0.56 to ~0.94 (a projector fitted to
the world's annotations reaches 0.95), which is what lets a small LLM read them after a short stage 2.

Only the projector (and a temperature) train; no LLM forward or backward is needed, so the warm start takes
seconds. Afterwards the projector is scaled so that image tokens have the mean norm of the LLM's input
embeddings. `model.projector_init: caption_alignment` in a stage-1 config turns it on (default `random`, the
paper's). It changes where stage 1 starts, not what it optimises.

    from lntune.model.projector_warmstart import align_projector
    stats = align_projector(model, processor, records, image_folder, steps=300)
"""

from __future__ import annotations

import math
from collections import Counter

from lntune.errors import LntuneError


def caption_of(record: dict) -> str:
    """The first assistant turn of a LLaVA record (a stage-1 sample's caption)."""
    for turn in record.get("conversations", []):
        if turn.get("from") == "gpt":
            return turn.get("value", "")
    raise LntuneError(f"sample {record.get('id', '?')}: no assistant turn to align with")


def idf_weighted_tokens(tokenizer, captions: list[str]):
    """(token ids, weights) padded to the longest caption; each row's weights are idf values summing to 1."""
    import torch

    ids = [tokenizer(c, add_special_tokens=False).input_ids for c in captions]
    if not any(ids):
        raise LntuneError("projector warm start: the captions are empty")
    document_frequency = Counter(t for row in ids for t in set(row))
    idf = {t: math.log(len(ids) / n) for t, n in document_frequency.items()}
    width = max(len(row) for row in ids)
    tokens = torch.zeros(len(ids), width, dtype=torch.long)
    weights = torch.zeros(len(ids), width)
    for i, row in enumerate(ids):
        tokens[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        weights[i, :len(row)] = torch.tensor([idf[t] for t in row])
    return tokens, weights / weights.sum(1, keepdim=True).clamp_min(1e-8)


def patch_tokens(model, pixel_values, chunk: int = 256):
    """The vision features the projector reads (the configured layer, CLS dropped where the strategy drops it)."""
    from lntune.model.vision import hidden_tokens

    config = model.config
    if not isinstance(config.vision_feature_layer, int):
        raise LntuneError("projector warm start: model.vision_feature_layer must be one layer")
    return hidden_tokens(model.model.vision_tower, pixel_values.to(model.dtype), config.vision_feature_layer,
                         drop_first=config.vision_feature_select_strategy == "default", chunk=chunk).float()


def assign_caption_words(image_tokens, words, tokens, weights, chunk: int = 256):
    """For every image token (N, patches, D; unit length), the index into its own caption's `tokens` (N, L) of the
    caption token whose unit embedding (a row of `words`) is closest to it; padding (weight 0) is never chosen.
    Chunked over images, so that no (N, L, D) tensor of caption embeddings is held at once."""
    import torch

    out = []
    for k in range(0, len(image_tokens), chunk):
        sim = torch.einsum("npd,nld->npl", image_tokens[k:k + chunk], words[tokens[k:k + chunk]])
        out.append(sim.masked_fill((weights[k:k + chunk] <= 0)[:, None, :], -2.0).argmax(-1))
    return torch.cat(out)


REFIT_ROWS = 65536
"""Patch tokens per chunk of the self-training refit (~0.5 GB of float64 for a 1,024-wide tower)."""


def refit_to_words(features, targets_of, ridge: float = 1e-3):
    """Ridge least squares (weight, bias) with features (N, patches, H) @ weight.T + bias ≈ targets_of(k, k+chunk)
    (the target rows of images k..k+chunk, (n, patches, D)); the normal equations are summed over chunks of
    REFIT_ROWS tokens. `ridge` is relative to the mean diagonal of the normal matrix."""
    import torch

    chunk = max(1, REFIT_ROWS // features.shape[1])
    normal, rhs = 0, 0
    for k in range(0, len(features), chunk):
        x = features[k:k + chunk].flatten(0, 1).double()
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        normal = normal + x.T @ x
        rhs = rhs + x.T @ targets_of(k, k + chunk).flatten(0, 1).double()
    normal = normal + ridge * normal.diagonal().mean() * torch.eye(len(normal), dtype=normal.dtype)
    solution = torch.linalg.solve(normal, rhs).float()
    return solution[:-1].T.contiguous(), solution[-1].contiguous()


def align_projector(model, processor, records: list[dict], image_folder, steps: int = 600, lr: float = 3e-3,
                    batch_size: int = 64, match_weight: float = 2.0, rounds: int = 4, seed: int = 0,
                    progress: bool = True) -> dict:
    """Train `model`'s linear projector in place on (image, caption) alignment; returns a few statistics."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from lntune.data.images import load_image
    from lntune.model.projector import projector_type

    if projector_type(model.config) != "linear":
        raise LntuneError("model.projector_init: caption_alignment needs the linear projector (model.projector: linear)")
    if not records:
        raise LntuneError("projector warm start: no stage-1 samples")
    linear = model.model.multi_modal_projector.linear_1
    images = [load_image(image_folder, record["image"]) for record in records]
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    features = patch_tokens(model, pixels)
    embeddings = model.get_input_embeddings().weight.detach().float()
    words = F.normalize(embeddings, dim=-1)
    tokens, weights = idf_weighted_tokens(processor.tokenizer, [caption_of(r) for r in records])

    generator = torch.Generator().manual_seed(seed)
    # Plain tensors, not a fresh nn.Linear: building one would draw from the global RNG and shift dropout masks.
    weight = linear.weight.detach().float().clone().requires_grad_(True)
    bias = linear.bias.detach().float().clone().requires_grad_(True)
    projector = lambda x: F.linear(x, weight, bias)  # noqa: E731
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
    optimizer = torch.optim.AdamW([weight, bias, log_scale], lr=lr, weight_decay=0.0)
    batch = min(batch_size, len(records))
    loss_value = float("nan")
    with torch.enable_grad():
        for step in tqdm(range(steps), desc="projector warm start", unit="step", disable=not progress):
            idx = torch.randperm(len(records), generator=generator)[:batch]
            image_tokens = F.normalize(projector(features[idx]), dim=-1)  # (B, patches, D)
            caption_words = words[tokens[idx]]  # (B, L, D)
            best = torch.einsum("ipd,jkd->ijkp", image_tokens, caption_words).amax(-1)  # (B, B, L)
            scores = (best * weights[idx][None]).sum(-1) * log_scale.exp()
            target = torch.arange(len(idx))
            own = (best[target, target] * weights[idx]).sum(-1).mean()
            loss = (F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target)) / 2 + match_weight * (1 - own)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
    with torch.no_grad():
        weight, bias = weight.detach(), bias.detach()
        for _ in range(rounds):  # self-training: each token onto the caption word it is nearest to
            nearest = tokens.gather(1, assign_caption_words(F.normalize(projector(features), dim=-1), words, tokens,
                                                            weights))  # (N, patches) token ids
            weight, bias = refit_to_words(features, lambda a, b: embeddings[nearest[a:b]])
        scale = embeddings.norm(dim=-1).mean() / projector(features.flatten(0, 1)).norm(dim=-1).mean()
        linear.weight.copy_((weight * scale).to(linear.weight.dtype))
        linear.bias.copy_((bias * scale).to(linear.bias.dtype))
    return {"steps": steps, "final_loss": round(loss_value, 4), "rounds": rounds, "pairs": len(records),
            "scale": round(float(scale), 6)}
