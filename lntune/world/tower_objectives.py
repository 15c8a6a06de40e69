"""The two ways lntune pretrains the world's vision tower (used by vision_tower.py).

- `Contrastive` (the paper's main setting, an encoder aligned with language, like CLIP): a `CLIPModel`
  whose text side is a small `CLIPTextModel` over a word-level tokenizer built with `tokenizers` from the
  world's caption vocabulary. CLIP's symmetric loss, with two additions for a tiny model: captions that
  are word-for-word identical count as positives of each other, and every image also gets a hard-negative
  caption, describing the same scene with one object's category or colour changed (as in NegCLIP). Without them, a tower trained for a minute matches images to captions by colour alone.
  With `patch_words` (patch_words.py) it also trains every patch token to name what the patch shows in the
  LLM's word space, weighted by the preset's `word_weight`: CLIP's loss alone leaves a small tower's patch
  tokens nearly silent about their content, and those tokens are what a LLaVA projector reads.
- `Classification` (Table 5's ablation, an encoder *not* aligned with language, like an ImageNet ViT):
  object labels from the pooled output: which categories and colours are present (multi-label), and what
  category, colour and size each grid cell holds.

Each objective owns its model and exposes `vision` (the `CLIPVisionModel` to save), `loss(idx, gen)` for a
batch of training-image indices, and `metrics(held_pixels)` on held-out images.
"""

from __future__ import annotations

import random

from lntune.world import language as L
from lntune.world.scenes import CATEGORIES, COLORS, Scene, WorldObject

CAPTIONS_PER_IMAGE = 8
PATCH_LAYER = -1
"""The tower layer whose patch tokens the world configs' projector reads (model.vision_feature_layer)."""
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]  # eos id 3: CLIP pools at the first eos (id 2 means legacy argmax)


def build_caption_tokenizer(captions: list[str]):
    """A word-level `tokenizers.Tokenizer` over the captions' words (lowercased, punctuation split off),
    adding [BOS] ... [EOS] around every text."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    split = pre_tokenizers.Whitespace().pre_tokenize_str
    words = sorted({word for c in captions for word, _span in split(c.lower())})
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + words)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])])
    return tok


def encode(tok, texts: list[str]):
    """(input_ids, attention_mask), right-padded with [PAD] (id 0)."""
    import torch

    encs = tok.encode_batch(texts)
    length = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    return ids, mask


def hard_negative(scene: Scene, rng: random.Random, kinds=("category", "category", "color")) -> Scene:
    """The scene with one object's category or colour changed. Every caption style names every object's
    category and colour, so a caption of this scene is false for the original image."""
    objs = list(scene.objects)
    i = rng.randrange(len(objs))
    o = objs[i]
    if rng.choice(kinds) == "color":
        objs[i] = WorldObject(o.category, rng.choice([c for c in COLORS if c != o.color]), o.size, o.position,
                              o.cell, o.bbox)
    else:
        objs[i] = WorldObject(rng.choice([c for c in CATEGORIES if c != o.category]), o.color, o.size, o.position,
                              o.cell, o.bbox)
    return Scene(scene.image_id, scene.file, scene.pool, scene.theme, scene.background, objs)


def _caption(scene: Scene, k: int, rng: random.Random) -> str:
    return L.coco_caption(scene, rng) if k % 2 == 0 else L.flickr_caption(scene, rng)


def _multi_positive_ce(logits, positive):
    """Cross-entropy against a target spread evenly over each row's positives."""
    import torch

    target = positive.float() / positive.float().sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


class Contrastive:
    def __init__(self, train: list[Scene], held: list[Scene], pixels, vision_config, tower, rng: random.Random,
                 patch_words=None):
        import torch
        from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

        self.pixels = pixels
        captions = [_caption(s, k, rng) for s in train for k in range(CAPTIONS_PER_IMAGE)]
        negatives = [_caption(hard_negative(s, rng), k, rng) for s in train for k in range(CAPTIONS_PER_IMAGE)]
        self.held_captions = [L.coco_caption(s, rng) for s in held]
        self.held_negatives = [L.coco_caption(hard_negative(s, rng, kinds=("category",)), rng) for s in held]
        self.tok = build_caption_tokenizer(captions + negatives + self.held_captions + self.held_negatives)
        self.ids, self.mask = encode(self.tok, captions + negatives)
        self.n_captions = len(captions)
        text_id = {c: i for i, c in enumerate(dict.fromkeys(captions))}
        self.text_id = torch.tensor([text_id[c] for c in captions])
        text_config = CLIPTextConfig(
            vocab_size=self.tok.get_vocab_size(), hidden_size=tower.text_hidden_size,
            intermediate_size=4 * tower.text_hidden_size, num_hidden_layers=tower.text_layers,
            num_attention_heads=max(1, tower.text_hidden_size // 32), max_position_embeddings=self.ids.shape[1] + 8,
            pad_token_id=0, bos_token_id=2, eos_token_id=3)
        self.model = CLIPModel(CLIPConfig(text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
                                          projection_dim=tower.projection_dim))
        self.vision = self.model.vision_model
        self.patch_words, self.word_weight = patch_words, tower.word_weight

    def parameters(self):
        extra = list(self.patch_words.module.parameters()) if self.patch_words is not None else []
        return list(self.model.parameters()) + extra

    def loss(self, idx, gen):
        import torch

        n = len(idx)
        pick = idx * CAPTIONS_PER_IMAGE + torch.randint(0, CAPTIONS_PER_IMAGE, (n,), generator=gen)
        rows = torch.cat([pick, pick + self.n_captions])  # the captions, then their hard negatives
        width = int(self.mask[rows].sum(1).max())
        dense = self.patch_words is not None and self.word_weight > 0
        out = self.model(input_ids=self.ids[rows, :width], attention_mask=self.mask[rows, :width],
                         pixel_values=self.pixels[idx], output_hidden_states=dense)
        logits = out.logits_per_image  # (n images, 2n texts)
        same = self.text_id[pick][:, None] == self.text_id[pick][None, :]
        image_to_text = _multi_positive_ce(logits, torch.cat([same, torch.zeros_like(same)], dim=1))
        text_to_image = _multi_positive_ce(logits[:, :n].t(), same)
        loss = (image_to_text + text_to_image) / 2
        if dense:
            patches = out.vision_model_output.hidden_states[PATCH_LAYER][:, 1:]  # CLS dropped
            loss = loss + self.word_weight * self.patch_words.loss(idx, patches)
        return loss

    def metrics(self, held_pixels, chunk: int = 32) -> dict:
        """Top-1 retrieval among `chunk` held-out images (a hit when the retrieved caption is the right
        text), and how often the true caption beats one with an object's category changed."""
        i2t = t2i = total = 0
        for k in range(0, len(self.held_captions), chunk):
            caps = self.held_captions[k:k + chunk]
            ids, mask = encode(self.tok, caps)
            logits = self.model(input_ids=ids, attention_mask=mask, pixel_values=held_pixels[k:k + chunk]).logits_per_image
            i2t += sum(caps[j] == caps[i] for i, j in enumerate(logits.argmax(1).tolist()))
            t2i += sum(caps[j] == caps[i] for i, j in enumerate(logits.argmax(0).tolist()))
            total += len(caps)
        wins = 0
        for i, (good, bad) in enumerate(zip(self.held_captions, self.held_negatives)):
            ids, mask = encode(self.tok, [good, bad])
            logits = self.model(input_ids=ids, attention_mask=mask, pixel_values=held_pixels[i:i + 1]).logits_per_image
            wins += int(logits[0, 0] > logits[0, 1])
        return {f"held_out_retrieval_i2t@{chunk}": round(i2t / total, 4),
                f"held_out_retrieval_t2i@{chunk}": round(t2i / total, 4),
                "held_out_caption_vs_wrong_category": round(wins / len(self.held_captions), 4)}


def label_names(world: dict) -> list[str]:
    """The classification objective's presence labels (multi-label): which categories and colours appear."""
    return [f"category={c}" for c in world["categories"]] + [f"color={c}" for c in world["colors"]]


def classification_targets(scenes: list[Scene], world: dict):
    """(presence multi-hot over label_names, per-cell category, colour, size) as tensors. An empty cell's
    category is the extra class len(categories); its colour and size are -100 (ignored by the loss)."""
    import torch

    cats, colors, sizes = world["categories"], world["colors"], world["sizes"]
    n_cells = len(world["positions"])
    grid = int(round(n_cells ** 0.5))
    n = len(scenes)
    presence = torch.zeros(n, len(cats) + len(colors))
    cat = torch.full((n, n_cells), len(cats), dtype=torch.long)
    col = torch.full((n, n_cells), -100, dtype=torch.long)
    size = torch.full((n, n_cells), -100, dtype=torch.long)
    for i, s in enumerate(scenes):
        for o in s.objects:
            presence[i, cats.index(o.category)] = 1.0
            presence[i, len(cats) + colors.index(o.color)] = 1.0
            cell = o.cell[0] * grid + o.cell[1]
            cat[i, cell], col[i, cell], size[i, cell] = cats.index(o.category), colors.index(o.color), sizes.index(o.size)
    return presence, cat, col, size


class Classification:
    """Object labels from the pooled output: the presence labels (multi-label, binary cross-entropy), and
    for every grid cell its object's category (or "empty"), colour and size (cross-entropy each)."""

    def __init__(self, train: list[Scene], held: list[Scene], pixels, vision_config, tower, world: dict):
        import torch
        from transformers import CLIPVisionModel

        self.pixels = pixels
        self.cats, self.colors, self.sizes = world["categories"], world["colors"], world["sizes"]
        self.n_cells = len(world["positions"])
        self.names = label_names(world)
        self.train_targets, self.held_targets = classification_targets(train, world), classification_targets(held, world)
        self.vision = CLIPVisionModel(vision_config)
        per_cell = len(self.cats) + 1 + len(self.colors) + len(self.sizes)
        self.head = torch.nn.Linear(vision_config.hidden_size, len(self.names) + self.n_cells * per_cell)
        self.model = torch.nn.ModuleDict({"vision": self.vision, "head": self.head})

    def parameters(self):
        return list(self.model.parameters())

    def _logits(self, pixel_values):
        out = self.head(self.vision(pixel_values=pixel_values).pooler_output)
        k, nc, nk = len(self.names), len(self.cats) + 1, len(self.colors)
        cells = out[:, k:].reshape(len(out), self.n_cells, -1)
        return out[:, :k], cells[..., :nc], cells[..., nc:nc + nk], cells[..., nc + nk:]

    def loss(self, idx, gen):
        import torch.nn.functional as F

        presence, cat, col, size = (t[idx] for t in self.train_targets)
        lp, lc, lo, ls = self._logits(self.pixels[idx])
        return (F.binary_cross_entropy_with_logits(lp, presence) + F.cross_entropy(lc.flatten(0, 1), cat.flatten())
                + F.cross_entropy(lo.flatten(0, 1), col.flatten()) + F.cross_entropy(ls.flatten(0, 1), size.flatten()))

    def metrics(self, held_pixels) -> dict:
        """F1 of the category-presence labels, and the accuracy of the per-cell category (empty included)."""
        presence, cat, _, _ = self.held_targets
        lp, lc, _, _ = self._logits(held_pixels)
        pred, truth = lp[:, : len(self.cats)] > 0, presence[:, : len(self.cats)].bool()
        f1 = 2 * float((pred & truth).sum()) / max(1.0, float(pred.sum() + truth.sum()))
        return {"held_out_category_f1": round(f1, 4),
                "held_out_cell_category_accuracy": round(float((lc.argmax(-1) == cat).float().mean()), 4)}
