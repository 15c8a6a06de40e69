"""Does a model use the image for yes/no questions? Two probes on the world's POPE questions.

    python scripts/pope_probe.py image RUN_DIR EVAL_DIR [--world DIR]   # EVAL_DIR: `lntune eval` output with pope
    python scripts/pope_probe.py text [--world DIR] [--per-split 40]    # the embedded LLM alone, scene given as text

Both score each question by log P(yes) - log P(no) of the first answer token ("Yes"/"yes" vs "No"/"no")
and report the ROC AUC of that score against the labels (0.5: no information), plus the accuracy of
answering "yes" when it is positive.

- `image`: the run's model on the prompts and images of EVAL_DIR/predictions/pope.jsonl, then on the same
  prompts with the images shuffled among the questions. A model that reads the image scores higher with
  the true images; equal AUCs mean its answers come from the question text alone.
- `text`: SmolLM2-135M-Instruct with the scene written out ("The image shows a small red ball, ...") before
  the question: how well the LLM itself answers when the vision side is perfect.
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


def text_probe(world: Path, per_split: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lntune.model.embedded import embedded_llm_dir

    llm = embedded_llm_dir()
    tokenizer, model = AutoTokenizer.from_pretrained(llm), AutoModelForCausalLM.from_pretrained(llm).eval()
    scenes = {image["file"]: image for image in json.loads((world / "world.json").read_text())["images"]}
    questions = []
    for path in sorted((world / "eval" / "pope").glob("*.json")):
        questions += [json.loads(line) for line in path.read_text().splitlines()][:per_split]
    for suffix in ("", " Please answer yes or no."):
        scores = []
        for q in questions:
            scene = scenes[q["image"]]
            objects = ", ".join(f"a {o['size']} {o['color']} {o['category']}" for o in scene["objects"])
            content = f"The image shows {objects} on a {scene['background']} background.\n{q['text']}{suffix}"
            text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                 add_generation_prompt=True)
            with torch.no_grad():
                scores += yes_minus_no(model(**tokenizer(text, return_tensors="pt")).logits[:, -1], tokenizer).tolist()
        print(report(f"scene as text{suffix or ' (question as asked)'}", scores, [q["label"] == "yes" for q in questions]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["image", "text"])
    parser.add_argument("paths", nargs="*", help="image: RUN_DIR EVAL_DIR")
    parser.add_argument("--world", type=Path, help="the world directory (default: the quick world, generated if missing)")
    parser.add_argument("--per-split", type=int, default=40)
    args = parser.parse_args()
    if args.world is None:
        from lntune.world.cache import ensure_world

        args.world = ensure_world("quick", 0, progress=False)
    if args.probe == "image":
        if len(args.paths) != 2:
            parser.error("image needs RUN_DIR and EVAL_DIR")
        image_probe(*args.paths, world=args.world)
    else:
        text_probe(args.world, args.per_split)


if __name__ == "__main__":
    main()
