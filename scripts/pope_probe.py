"""Does a model use the image for yes/no questions? Two probes on the world's POPE questions.

    python scripts/pope_probe.py image RUN_DIR EVAL_DIR [--world DIR]   # EVAL_DIR: `lntune eval` output with pope
    python scripts/pope_probe.py text [--world DIR] [--per-split 40]    # the embedded LLM alone, scene given as text
    python scripts/pope_probe.py text-tuned [--steps 16] [--lr 2e-3]     # the same after LayerNorm tuning on text scenes

All three score each question by log P(yes) - log P(no) of the first answer token ("Yes"/"yes" vs "No"/"no")
and report the ROC AUC of that score against the labels (0.5: no information), plus the accuracy of
answering "yes" when it is positive.

- `image`: the run's model on the prompts and images of EVAL_DIR/predictions/pope.jsonl, then on the same
  prompts with the images shuffled among the questions. A model that reads the image scores higher with
  the true images; equal AUCs mean its answers come from the question text alone.
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


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def yes_minus_no(logits: torch.Tensor, tokenizer) -> torch.Tensor:
    """log P(yes) - log P(no) from next-token logits (rows x vocab)."""
    first = lambda words: [tokenizer.encode(w, add_special_tokens=False)[0] for w in words]
    logp = logits.float().log_softmax(-1)
    return torch.logsumexp(logp[:, first(("Yes", "yes"))], -1) - torch.logsumexp(logp[:, first(("No", "no"))], -1)


def pope_labels(world: Path) -> dict[str, bool]:
    """{"<split>/<question_id>": label is yes} over the world's POPE files."""
    labels = {}
    for path in sorted((world / "eval" / "pope").glob("*.json")):
        split = path.stem.split("_")[-1]
        for line in path.read_text().splitlines():
            q = json.loads(line)
            labels[f"{split}/{q['question_id']}"] = q["label"] == "yes"
    return labels


def report(name: str, scores: list[float], labels: list[bool]) -> str:
    accuracy = sum((s > 0) == y for s, y in zip(scores, labels)) / len(labels)
    return f"{name}: n={len(labels)} AUC {roc_auc(scores, labels):.3f}, accuracy {100 * accuracy:.1f}%"


def image_probe(run_dir: str, eval_dir: str, world: Path, batch: int = 16) -> None:
    from PIL import Image

    from lntune.model.load import load_mllm

    model, processor = load_mllm(run_dir)
    model.eval()
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    records = [json.loads(line) for line in (Path(eval_dir) / "predictions" / "pope.jsonl").read_text().splitlines()]
    labels = [pope_labels(world)[r["id"]] for r in records]

    def scores(images: list[str]) -> list[float]:
        out = []
        for start in range(0, len(records), batch):
            chunk = records[start:start + batch]
            pixels = [Image.open(p).convert("RGB") for p in images[start:start + batch]]
            inputs = processor(text=[r["prompt"] for r in chunk], images=pixels, return_tensors="pt", padding=True)
            with torch.no_grad():
                out += yes_minus_no(model(**inputs).logits[:, -1], tokenizer).tolist()
        return out

    true_images = [r["image"] for r in records]
    shuffled = true_images[:]
    random.Random(0).shuffle(shuffled)
    print(report("true images", scores(true_images), labels))
    print(report("shuffled images", scores(shuffled), labels))


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
    parser.add_argument("probe", choices=["image", "text", "text-tuned"])
    parser.add_argument("paths", nargs="*", help="image: RUN_DIR EVAL_DIR")
    parser.add_argument("--world", type=Path, help="the world directory (default: the quick world, generated if missing)")
    parser.add_argument("--per-split", type=int, default=40)
    parser.add_argument("--steps", type=int, default=16, help="text-tuned: optimizer steps of 16 questions")
    parser.add_argument("--lr", type=float, default=2e-3, help="text-tuned: peak learning rate (cosine decay)")
    args = parser.parse_args()
    if args.world is None:
        from lntune.world.cache import ensure_world

        args.world = ensure_world("quick", 0, progress=False)
    if args.probe == "image":
        if len(args.paths) != 2:
            parser.error("image needs RUN_DIR and EVAL_DIR")
        image_probe(*args.paths, world=args.world)
    elif args.probe == "text":
        text_probe(args.world, args.per_split)
    else:
        text_tuned_probe(args.world, args.per_split, args.steps, args.lr)


if __name__ == "__main__":
    main()
