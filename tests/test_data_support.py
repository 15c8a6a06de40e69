"""Shared helpers for the data tests: tiny offline tokenizers and LLaVA processors, and small image folders.

Nothing is downloaded: the tokenizers are BPE models trained here on a few strings, one byte-level
(GPT-2 / SmolLM2 style) and one sentencepiece-like (Metaspace, Llama style). Import from the test files
with `from test_data_support import tiny_processor` (pytest puts the tests folder on sys.path).
"""

from pathlib import Path

from PIL import Image

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. USER: ASSISTANT: system user assistant",
    "[INST] <<SYS>> <</SYS>> [/INST] You are a helpful assistant.",
    "What is in the image? A red square above a blue circle. How many shapes are there? There are two shapes.",
    "Describe the picture in detail. The picture shows a green triangle on the left and a yellow star.",
    "Why is the ball red? Because it was painted red. Is it big or small? It is small, about 3 cm.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-\n",
]
PATCH = 8
IMAGE_SIZE = 32  # (32/8)^2 = 16 image tokens, as in the synthetic world


def tiny_tokenizer(kind: str = "bytelevel"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )


def tiny_processor(template: str = "chatml", kind: str = "bytelevel"):
    """A LlavaProcessor (CLIP-style image processor at 32 px, patch 8 -> 16 image tokens) with a named template."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from lntune.data.templates import ensure_chat_template

    tokenizer = tiny_tokenizer(kind)
    ensure_chat_template(tokenizer, template)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )


def write_images(folder: Path, names=("a.png", "b.png", "c.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.new("RGB", (40, 30), (60 * k % 256, 100, 200)).save(folder / name)
    return folder


def sample(sid, image="a.png", turns=(("What is in the image?", "A red square above a blue circle."),), **extra):
    """A LLaVA record; the first human turn gets the <image> tag when there is an image."""
    conversations = []
    for k, (question, answer) in enumerate(turns):
        value = f"<image>\n{question}" if k == 0 and image is not None else question
        conversations += [{"from": "human", "value": value}, {"from": "gpt", "value": answer}]
    record = {"id": sid, "conversations": conversations, **extra}
    if image is not None:
        record["image"] = image
    return record
