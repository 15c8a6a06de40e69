"""Can the LLM side answer the world's POPE questions when the vision side is perfect? A text probe.

    python experiments/pope_probe.py text [--world DIR] [--per-split 40]    # the embedded LLM alone, scene given as text

It scores each question by log P(yes) - log P(no) of the first answer token ("Yes"/"yes" vs "No"/"no",
lntune.analysis.grounding) and reports the ROC AUC of that score against the labels (0.5: no information),
plus the accuracy of answering "yes" when it is positive. Whether a trained MLLM reads the image is
`lntune analyze grounding` (true vs shuffled images).

The probe gives SmolLM2-135M-Instruct the scene written out ("The image shows a small red ball, ...") before
the question: how well the LLM itself answers when the vision side is perfect.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lntune.analysis.grounding import roc_auc, yes_no_score_fn


def yes_minus_no(logits: torch.Tensor, tokenizer) -> torch.Tensor:
    """log P(yes) - log P(no) from next-token logits (rows x vocab)."""
    return yes_no_score_fn(tokenizer)(logits)


def report(name: str, scores: list[float], labels: list[bool]) -> str:
    accuracy = sum((s > 0) == y for s, y in zip(scores, labels)) / len(labels)
    return f"{name}: n={len(labels)} AUC {roc_auc(scores, labels):.3f}, accuracy {100 * accuracy:.1f}%"


def scene_text(scene: dict) -> str:
    objects = ", ".join(f"a {o['size']} {o['color']} {o['category']}" for o in scene["objects"])
    return f"The image shows {objects} on a {scene['background']} background."


def _embedded_llm():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lntune.model.embedded import embedded_llm_dir

    llm = embedded_llm_dir()
    return AutoTokenizer.from_pretrained(llm), AutoModelForCausalLM.from_pretrained(llm).eval()


def _chat_prompt(tokenizer, content: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)


def score_text_pope(model, tokenizer, world: Path, per_split: int, suffix: str = "") -> tuple[list[float], list[bool]]:
    """Yes-vs-no scores of the world's POPE questions with the scene written out before each question."""
    scenes = {image["file"]: image for image in json.loads((world / "world.json").read_text())["images"]}
    questions = []
    for path in sorted((world / "eval" / "pope").glob("*.json")):
        questions += [json.loads(line) for line in path.read_text().splitlines()][:per_split]
    scores = []
    for q in questions:
        text = _chat_prompt(tokenizer, f"{scene_text(scenes[q['image']])}\n{q['text']}{suffix}")
        with torch.no_grad():
            scores += yes_minus_no(model(**tokenizer(text, return_tensors="pt")).logits[:, -1], tokenizer).tolist()
    return scores, [q["label"] == "yes" for q in questions]


def text_probe(world: Path, per_split: int) -> None:
    tokenizer, model = _embedded_llm()
    for suffix in ("", " Please answer yes or no."):
        scores, labels = score_text_pope(model, tokenizer, world, per_split, suffix)
        print(report(f"scene as text{suffix or ' (question as asked)'}", scores, labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["text"])
    parser.add_argument("--world", type=Path, help="the world directory (default: the quick world, generated if missing)")
    parser.add_argument("--per-split", type=int, default=40)
    args = parser.parse_args()
    if args.world is None:
        from lntune.world.cache import ensure_world

        args.world = ensure_world("quick", 0, progress=False)
    text_probe(args.world, args.per_split)


if __name__ == "__main__":
    main()
