"""The dense half of the world tower's contrastive objective: every patch token names what that patch shows,
in the LLM's own word space.

CLIP's loss shapes only the pooled output, so a small tower's patch tokens need not say what they show; yet a
LLaVA projector reads the patch tokens. `PatchWords` adds a linear head on the patch tokens of the layer the
projector reads and scores it, by cosine with a learned temperature, against the LLM's frozen input embeddings
(word_space.py): the content word (the category of the object covering the patch, or the background noun; on the
leftmost patch column of an object that spans several columns, its colour) and, on object patches, the colour word,
as two classifications; and, weighted by `cosine_weight`, one minus the cosine
between the head's output and the content word itself, which pulls the output onto the word rather than only
nearer to it than to the other words (an LLM reads a token that is nearly a word; one half-way is noise to it). After training, a linear map from patch tokens to word embeddings exists
by construction, which is what lets a linear projector trained on captions turn image tokens into words the
LLM reads. The head is discarded; only the tower is saved.

    from lntune.world.patch_words import patch_targets
    content, color = patch_targets(scenes, world, image_size=64, patch_size=16)
"""

from __future__ import annotations

from lntune.world.scenes import Scene

MIN_COVER = 0.15
"""An object names a patch when it covers at least this fraction of the patch (the largest cover wins)."""


def patch_targets(scenes: list[Scene], world: dict, image_size: int, patch_size: int):
    """(content, color) index tensors of shape (images, patches), patches in row-major order: content indexes
    world_words()'s content list (categories, then backgrounds, then colours); color indexes the colours, -100
    where the patch shows background.

    An object that covers patches in several columns names its colour on the leftmost of them and its category on
    the rest, so that its tokens read, row by row, like "red ball"; an object within one column names its category
    only (a single token cannot be both words)."""
    import torch

    cats, colors, backgrounds = world["categories"], world["colors"], world["backgrounds"]
    first_color = len(cats) + len(backgrounds)
    side = image_size // patch_size
    content = torch.zeros(len(scenes), side * side, dtype=torch.long)
    color = torch.full((len(scenes), side * side), -100, dtype=torch.long)
    area = patch_size * patch_size
    for i, scene in enumerate(scenes):
        content[i] = len(cats) + backgrounds.index(scene.background)
        owner = {}
        for p in range(side * side):
            px0, py0 = (p % side) * patch_size, (p // side) * patch_size
            best = MIN_COVER * area
            for k, o in enumerate(scene.objects):
                x0, y0, x1, y1 = o.bbox
                cover = max(0, min(px0 + patch_size, x1) - max(px0, x0)) * max(0, min(py0 + patch_size, y1) - max(py0, y0))
                if cover >= best:
                    best = cover
                    content[i, p], color[i, p] = cats.index(o.category), colors.index(o.color)
                    owner[p] = k
        for k, o in enumerate(scene.objects):
            patches = [p for p, who in owner.items() if who == k]
            columns = {p % side for p in patches}
            if len(columns) > 1:
                for p in patches:
                    if p % side == min(columns):
                        content[i, p] = first_color + colors.index(o.color)
    return content, color


class PatchWords:
    """Head + loss: patch tokens (n, patches, hidden) -> cross-entropy over content words + over colour words."""

    def __init__(self, hidden_size: int, word_space, content, color, cosine_weight: float = 0.0):
        import torch
        import torch.nn.functional as F

        self.content_targets, self.color_targets = content, color
        self.cosine_weight = cosine_weight
        self.content_words = F.normalize(word_space.content, dim=-1)
        self.color_words = F.normalize(word_space.colors, dim=-1)
        self.head = torch.nn.Linear(hidden_size, word_space.content.shape[1])
        self.log_scale = torch.nn.Parameter(torch.tensor(10.0).log())
        self.module = torch.nn.ParameterDict({"log_scale": self.log_scale})
        self.module.add_module("head", self.head)

    def directions(self, patches):
        import torch.nn.functional as F

        return F.normalize(self.head(patches), dim=-1)

    def logits(self, z):
        """(content, colour) logits of head directions `z` (from `directions`)."""
        z = self.log_scale.exp() * z
        return z @ self.content_words.T, z @ self.color_words.T

    def loss(self, idx, patches):
        import torch.nn.functional as F

        z = self.directions(patches)
        content = self.content_targets[idx]
        # two separate products (not one shared scaled z): the trained towers' bits depend on this graph
        content_logits = self.log_scale.exp() * z @ self.content_words.T
        color_logits = self.log_scale.exp() * z @ self.color_words.T
        loss = (F.cross_entropy(content_logits.flatten(0, 1), content.flatten())
                + F.cross_entropy(color_logits.flatten(0, 1), self.color_targets[idx].flatten(), ignore_index=-100))
        if self.cosine_weight:
            loss = loss + self.cosine_weight * (1 - (z * self.content_words[content]).sum(-1)).mean()
        return loss

    def accuracy(self, patches, content, color) -> dict:
        """How often the head's nearest content / colour word is right, on held-out patches."""
        z = self.directions(patches)
        content_logits, color_logits = self.logits(z)
        hit = content_logits.argmax(-1) == content
        objects = color != -100
        cosine = (z * self.content_words[content]).sum(-1)
        return {"patch_word_accuracy": round(float(hit.float().mean()), 4),
                "patch_word_cosine_objects": round(float(cosine[objects].mean()), 4),
                "patch_word_accuracy_objects": round(float(hit[objects].float().mean()), 4),
                "patch_color_accuracy": round(float((color_logits.argmax(-1) == color)[objects].float().mean()), 4)}
