"""Model assembly and loading: an HF `LlavaForConditionalGeneration` plus its `LlavaProcessor`.

    from lntune.model import build_mllm, load_mllm, build_embedded_mllm
"""

from lntune.data.conversation import num_image_tokens
from lntune.model.build import build_mllm, build_embedded_mllm
from lntune.model.load import load_mllm, save_mllm

__all__ = ["build_mllm", "build_embedded_mllm", "load_mllm", "save_mllm", "num_image_tokens"]
