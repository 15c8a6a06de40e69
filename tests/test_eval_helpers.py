"""Shared helpers for the evaluation tests: a tiny random LLaVA model and a tiny benchmark data root.

Nothing is downloaded: the tokenizer is a byte-level BPE trained here on a few strings, the model is a
2-layer CLIP + 2-layer Llama with random weights. Import from the test files with
`from test_eval_helpers import tiny_llava, write_tiny_benchmarks` (the tests folder is put on sys.path).
"""

import json
from pathlib import Path

from PIL import Image

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Is there a dog in the image? Please answer yes or no.",
    "What color is the ball?\nAnswer the question using a single word or phrase.",
    "Please provide a description of the picture. A red square and a blue circle on a white ground.",
    "yes no one two three red green blue square circle triangle left right above below",
    "system user assistant",
]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<image>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>", bos_token=None,
        extra_special_tokens={"image_token": "<image>"}, chat_template=CHATML,
    )


def tiny_llava(seed: int = 0, image_size: int = 32, patch: int = 8):
    """A random LlavaForConditionalGeneration + LlavaProcessor ((image_size/patch)^2 image tokens)."""
    import torch
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = tiny_tokenizer()
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=image_size, patch_size=patch, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    # Random weights give flat logits; sharpen them so greedy decoding is far from ties.
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHATML)
    return model, processor


def color_image(i: int, size: int = 32) -> Image.Image:
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220), (220, 40, 220)]
    img = Image.new("RGB", (size, size), palette[i % len(palette)])
    img.putpixel((i % size, (3 * i) % size), (255, 255, 255))
    return img


FIXTURE = Path(__file__).parent / "fixtures" / "eval_runner" / "benchmarks.json"


def write_tiny_benchmarks(root: Path) -> tuple[Path, Path]:
    """Write a tiny copy of all five benchmarks in their official layouts; returns (data_root, image_root).

    POPE, MME and COCO-Karpathy records are real (tests/fixtures/eval_runner/benchmarks.json); VQAv2 and
    Flickr30k are made up in the official formats. Images are small solid squares with the real names:
    images/val2014/COCO_val2014_*.jpg, images/flickr30k-images/*.jpg, and MME's own in both MME layouts.
    """
    real = json.loads(FIXTURE.read_text())
    data, images = root / "eval", root / "images"
    counter = iter(range(1000))

    def image(path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        color_image(next(counter), 40).save(path)

    (data / "pope").mkdir(parents=True)
    for split, rows in real["pope"].items():
        (data / "pope" / f"coco_pope_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        for r in rows:
            if not (images / "val2014" / r["image"]).exists():
                image(images / "val2014" / r["image"])

    for subtask, rows in real["mme"].items():
        folder = data / "mme" / subtask
        split_layout = subtask == "posters"
        for name in dict.fromkeys(r[0] for r in rows):
            stem = Path(name).stem
            txt = folder / "questions_answers_YN" / f"{stem}.txt" if split_layout else folder / f"{stem}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("".join(f"{q}\t{a}\n" for n, q, a in rows if n == name))
            image(folder / "images" / name if split_layout else folder / name)

    questions, annotations = [], []
    qa = [("What color is the ball?", "red"), ("How many dogs are there?", "2"), ("Is it sunny?", "yes")]
    for image_id in (1, 2, 3):
        image(images / "val2014" / f"COCO_val2014_{image_id:012d}.jpg")
        for k, (q, a) in enumerate(qa):
            qid = image_id * 10 + k
            questions.append({"image_id": image_id, "question": q, "question_id": qid})
            answers = [{"answer": a if j < 7 else "blue", "answer_confidence": "yes", "answer_id": j + 1} for j in range(10)]
            annotations.append({"question_type": "what", "multiple_choice_answer": a, "answers": answers,
                                "image_id": image_id, "answer_type": "other", "question_id": qid})
    common = {"info": {}, "license": {}, "data_subtype": "val2014", "data_type": "mscoco"}
    (data / "vqav2").mkdir()
    (data / "vqav2" / "questions.json").write_text(json.dumps({**common, "task_type": "Open-Ended", "questions": questions}))
    (data / "vqav2" / "annotations.json").write_text(json.dumps({**common, "annotations": annotations}))

    (data / "coco").mkdir()
    (data / "coco" / "dataset_coco.json").write_text(json.dumps(real["coco_karpathy"]))
    for entry in real["coco_karpathy"]["images"]:
        if entry["split"] == "test":
            image(images / entry["filepath"] / entry["filename"])

    flickr = []
    for k, split in enumerate(["test", "test", "train", "train", "train"]):
        name = f"10000{k}.jpg"
        sentences = [{"raw": f"A dog runs on the grass number {k} {j}.", "sentid": 5 * k + j, "imgid": k}
                     for j in range(5)]
        flickr.append({"filename": name, "imgid": k, "split": split, "sentids": [s["sentid"] for s in sentences],
                       "sentences": sentences})
        if split == "test":
            image(images / "flickr30k-images" / name)
    (data / "flickr30k").mkdir()
    (data / "flickr30k" / "dataset_flickr30k.json").write_text(json.dumps({"dataset": "flickr30k", "images": flickr}))
    return data, images
