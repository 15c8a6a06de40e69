"""Can the LLM side answer the world's POPE questions when the vision side is perfect? Two text probes.

    python experiments/pope_probe.py text [--world DIR] [--per-split 40]    # the embedded LLM alone, scene given as text
    python experiments/pope_probe.py text-tuned [--steps 16] [--lr 2e-3]     # the same after LayerNorm tuning on text scenes

Both score each question by log P(yes) - log P(no) of the first answer token ("Yes"/"yes" vs "No"/"no",
lntune.analysis.grounding) and report the ROC AUC of that score against the labels (0.5: no information),
plus the accuracy of answering "yes" when it is positive. Whether a trained MLLM reads the image is
`lntune analyze grounding` (true vs shuffled images).

- `text`: SmolLM2-135M-Instruct with the scene written out ("The image shows a small red ball, ...") before
  the question: how well the LLM itself answers when the vision side is perfect.
- `text-tuned`: first tunes what the `layernorm` strategy tunes inside the LLM (decoder norms, embeddings and
  the tied head) for `--steps` steps of lntune's AdamW on 16 yes/no existence questions about the world's
  training scenes, given as text in the world configs' ChatML template, then scores as `text`: whether a
  LayerNorm-sized budget can teach the answer when the vision side is perfect.
"""

from __future__ import annotations

import argparse
import json
import random
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


def yes_no_samples(world: Path, seed: int = 0) -> list[tuple[str, str]]:
    """(question with the scene as text, "Yes"/"No"): two existence questions per training scene, worded as the
    world's POPE questions, half of them about an absent category."""
    from lntune.world.benchmarks import pope_question

    meta = json.loads((world / "world.json").read_text())
    rng = random.Random(seed)
    samples = []
    for scene in (s for s in meta["images"] if s["split"] == "train"):
        present = sorted({o["category"] for o in scene["objects"]})
        for _ in range(2):
            yes = rng.random() < 0.5
            category = rng.choice(present if yes else [c for c in meta["categories"] if c not in present])
            samples.append((f"{scene_text(scene)}\n{pope_question(0, scene['file'], category, '')['text']}",
                            "Yes" if yes else "No"))
    rng.shuffle(samples)
    return samples


def yes_no_batch(tokenizer, pairs: list[tuple[str, str]]) -> dict:
    """A padded training batch of (question, answer) pairs: the loss is on the answer and its <|im_end|> only."""
    from lntune.data.collate import LlavaCollator

    items = []
    for question, answer in pairs:
        prompt = tokenizer(_chat_prompt(tokenizer, question), add_special_tokens=False).input_ids
        target = tokenizer(answer + "<|im_end|>", add_special_tokens=False).input_ids
        items.append({"input_ids": torch.tensor(prompt + target), "labels": torch.tensor([-100] * len(prompt) + target),
                      "attention_mask": torch.ones(len(prompt) + len(target), dtype=torch.long)})
    return LlavaCollator(tokenizer.pad_token_id)(items)


def layernorm_side_parameters(llm) -> list:
    """What the `layernorm` strategy trains inside a bare causal LM: its decoder blocks' norms and the (tied)
    embeddings; the final norm stays frozen, as in the strategy's default."""
    from lntune.strategies import is_norm

    norms = [p for block in llm.model.layers for m in block.modules() if is_norm(m) for p in m.parameters()]
    return norms + list(llm.get_input_embeddings().parameters())


def text_tuned_probe(world: Path, per_split: int, steps: int, lr: float, batch: int = 16) -> None:
    from types import SimpleNamespace

    from transformers import get_cosine_schedule_with_warmup

    from lntune.data.templates import ensure_chat_template
    from lntune.train.optim import make_optimizer

    tokenizer, model = _embedded_llm()
    ensure_chat_template(tokenizer, "chatml")  # as the world configs render: no default system message
    print(report("before tuning", *score_text_pope(model, tokenizer, world, per_split)))
    model.requires_grad_(False)
    params = layernorm_side_parameters(model)
    for p in params:
        p.requires_grad_(True)
    optimizer = make_optimizer(params, SimpleNamespace(lr=lr, weight_decay=0.0))
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, steps)
    samples = yes_no_samples(world)
    model.train()
    for step in range(steps):
        loss = model(**yes_no_batch(tokenizer, samples[step * batch:(step + 1) * batch])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # lntune's train.max_grad_norm default
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        print(f"step {step + 1}/{steps}: loss {loss.item():.3f}", flush=True)
    model.eval()
    print(report(f"after {steps} steps", *score_text_pope(model, tokenizer, world, per_split)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["text", "text-tuned"])
    parser.add_argument("--world", type=Path, help="the world directory (default: the quick world, generated if missing)")
    parser.add_argument("--per-split", type=int, default=40)
    parser.add_argument("--steps", type=int, default=16, help="text-tuned: optimizer steps of 16 questions")
    parser.add_argument("--lr", type=float, default=2e-3, help="text-tuned: peak learning rate (cosine decay)")
    args = parser.parse_args()
    if args.world is None:
        from lntune.world.cache import ensure_world

        args.world = ensure_world("quick", 0, progress=False)
    if args.probe == "text":
        text_probe(args.world, args.per_split)
    else:
        text_tuned_probe(args.world, args.per_split, args.steps, args.lr)


if __name__ == "__main__":
    main()
