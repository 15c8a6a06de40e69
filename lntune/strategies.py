"""Tuning strategies: which parameters of a LLaVA model train.

A strategy is a pure function from the model to a set of parameter names, applied with one
`requires_grad_` pass. LoRA is the only strategy that adds modules (peft adapters, injected into the
decoder blocks' linear layers only).

    lntune strategies                      # list them
    from lntune.strategies import StrategySpec, apply_strategy
    trainable = apply_strategy(model, StrategySpec("layernorm"))

"The base set" is the projector, the word embeddings and the output head: the paper trains it with every
strategy except LayerNorm-simple. `include_base` switches it for the Table 4 ablations.
"""

import re
from dataclasses import asdict, dataclass, field, fields

from lntune.errors import LntuneError

# name -> (what trains inside the decoder blocks, trains the base set by default, description)
STRATEGIES = {
    "finetune": ("all", True, "every LLM parameter + projector, word embeddings, output head"),
    "lora": ("lora", True, "LoRA adapters on every linear layer of the decoder blocks + the base set"),
    "attn-qv": ("qv", True, "attention q_proj and v_proj of every block + the base set"),
    "attn-mlp": ("mlp", True, "the MLP (feed-forward) of every block + the base set"),
    "layernorm": ("norms", True, "the normalization layers of every block + the base set"),
    "layernorm-simple": ("norms", False, "the normalization layers of every block, nothing else"),
    "connector": ("none", True, "the vision-language projector only (stage 1; Table 4's connector-only)"),
}
PAPER_STRATEGIES = tuple(name for name in STRATEGIES if name != "connector")  # the rows of the paper's Table 1/2

_LAYERS = re.compile(r"^(.*language_model\.layers)\.(\d+)\.(.+)$")


@dataclass
class LoraOptions:
    """LoRA hyper-parameters (the paper's text says rank 32; its Table 2 count matches LLaVA's default 64).

    Also the `train.lora` section of a run config (lntune/config.py checks its ranges with the config's keys).
    """

    r: int = 32  # LoRA rank (the paper's text: 32)
    alpha: int = 64  # LoRA alpha
    dropout: float = 0.05  # LoRA dropout

    def check(self):
        if self.r < 1:
            raise LntuneError(f"lora.r must be >= 1, got {self.r}")
        if not 0 <= self.dropout < 1:
            raise LntuneError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass(kw_only=True)
class StrategySwitches:
    """A strategy's switches: the fields StrategySpec and the `train:` section of a run config share."""

    include_base: bool | None = None  # train projector/embeddings/head; None: the strategy's default (the paper's)
    include_final_norm: bool = False  # also train the LLM's final norm (the paper's counts exclude it)
    train_embeddings: bool | None = None  # within the base set: word embeddings + output head; None: the default
    lora: LoraOptions = field(default_factory=LoraOptions)

    def switches(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(StrategySwitches)}


@dataclass
class StrategySpec(StrategySwitches):
    """A strategy name plus its switches."""

    name: str

    def __post_init__(self):
        if self.name not in STRATEGIES:
            raise LntuneError(f"unknown strategy {self.name!r}; valid strategies: {', '.join(STRATEGIES)}")
        if isinstance(self.lora, dict):
            self.lora = LoraOptions(**self.lora)
        self.lora.check()
        if self.name == "connector" and self.include_base is False:
            raise LntuneError("strategy 'connector' with include_base=false would train nothing")

    @property
    def base(self) -> bool:
        return STRATEGIES[self.name][1] if self.include_base is None else self.include_base

    @property
    def embeddings(self) -> bool:
        """Whether the base set includes word embeddings and output head (not for connector-only)."""
        return (self.name != "connector") if self.train_embeddings is None else self.train_embeddings

    def to_dict(self) -> dict:
        data = asdict(self)
        return {"name": data.pop("name"), **data}

    @classmethod
    def from_dict(cls, data: dict) -> "StrategySpec":
        return cls(**data)


def is_norm(module) -> bool:
    """LayerNorm and the RMSNorm variants of Llama, Mistral, Qwen2, Gemma, ... (by type or class name)."""
    from torch import nn

    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or type(module).__name__.lower().endswith("norm")


def decoder_norm_modules(model) -> list[str]:
    """Names of the normalization modules inside the LLM's decoder blocks (q/k norms of Qwen3-style blocks included)."""
    return [name for name, module in model.named_modules() if _LAYERS.match(name) and is_norm(module)]


def decoder_linear_modules(model) -> list[str]:
    """Names of the nn.Linear modules inside the LLM's decoder blocks: LoRA's targets."""
    from torch import nn

    return [
        name for name, module in model.named_modules()
        if _LAYERS.match(name) and isinstance(module, nn.Linear) and "lora_" not in name
    ]


def _within_blocks(name: str, what: str, norm_prefixes: tuple) -> bool:
    match = _LAYERS.match(name)
    if not match:
        return False
    rest = match.group(3)
    if what == "all":
        return True
    if what == "norms":
        return name.startswith(norm_prefixes)
    if what == "qv":
        return bool(re.match(r"self_attn\.(q_proj|v_proj)\.", rest)) and "lora_" not in rest
    if what == "mlp":
        return rest.startswith("mlp.")
    if what == "lora":
        return ".lora_" in "." + rest
    return False


def is_connector(name: str) -> bool:
    """Whether a parameter name belongs to the vision-language connector (the LLaVA projector)."""
    return "multi_modal_projector." in name


def _in_base(name: str, train_embeddings: bool) -> bool:
    if is_connector(name):
        return True
    return train_embeddings and (name.startswith("lm_head.") or ".embed_tokens." in name)


def _is_final_norm(name: str) -> bool:
    return bool(re.search(r"language_model\.norm\.", name))


def trainable_names(model, spec: StrategySpec) -> set[str]:
    """The parameter names `spec` trains (LoRA adapters must already be injected for 'lora')."""
    what = STRATEGIES[spec.name][0]
    norm_prefixes = tuple(n + "." for n in decoder_norm_modules(model))
    names = set()
    # remove_duplicate=False lists both names of a tied tensor (embed_tokens and lm_head share one)
    for name, _ in model.named_parameters(remove_duplicate=False):
        if "vision_tower." in name:
            continue  # the vision encoder always stays frozen
        if _within_blocks(name, what, norm_prefixes) or (spec.base and _in_base(name, spec.embeddings)):
            names.add(name)
        elif spec.include_final_norm and _is_final_norm(name):
            names.add(name)
        elif what == "all" and ".language_model." in name and "vision_tower" not in name:
            names.add(name)  # finetune: the LLM's embeddings and final norm belong to "the whole LLM"
    return names


def inject_lora(model, options: LoraOptions):
    """Add LoRA adapters to the decoder blocks' linear layers (not the vision tower, projector or head)."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = decoder_linear_modules(model)
    if not targets:
        raise LntuneError("LoRA: no linear layers found inside the LLM's decoder blocks")
    from lntune.lora_dropout import lean_lora_inputs

    config = LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=targets, bias="none")
    model = inject_adapter_in_model(config, model)
    lean_lora_inputs(model)  # each adapted input kept once, not as dropout's copies (lntune/lora_dropout.py)
    return model


def apply_strategy(model, spec: StrategySpec, master_dtype=None) -> set[str]:
    """Freeze everything, then let exactly the strategy's parameters train. Returns their names.

    In a bf16/fp16 model the trainable parameters are cast to fp32 (master weights); run the forward
    under autocast so mixed dtypes meet safely.
    """
    import torch

    if spec.name == "lora" and not any("lora_" in n for n, _ in model.named_parameters()):
        inject_lora(model, spec.lora)
    names = trainable_names(model, spec)
    model.requires_grad_(False)
    for name, param in model.named_parameters(remove_duplicate=False):
        if name in names:
            param.requires_grad_(True)
            if param.dtype in (torch.bfloat16, torch.float16):
                param.data = param.data.to(master_dtype or torch.float32)
    return names


def describe_strategies() -> list[tuple[str, str]]:
    return [(name, description) for name, (_, _, description) in STRATEGIES.items()]
