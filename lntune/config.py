"""Typed run configuration: dataclasses loaded from YAML, with dotted `key=value` overrides.

    lntune train --config configs/world/stage2_layernorm.yaml train.lr=1e-3 output_dir=runs/x

Every field has a docstring-style comment; unknown keys and bad values raise one error naming the key.
Paths may use `${world}` and `${tower}` (the cached synthetic world of the `world:` section and its vision
tower) and `${config_dir}`. Loading and resolving a config builds nothing: `lntune.pipeline.ready_config` (what
`lntune train`, quickstart, sweep and reproduce call) first generates or finds the world and tower
(lntune.world.cache.prepare_world), then fills the paths.
"""

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lntune.errors import LntuneError, shown
from lntune.strategies import STRATEGIES, StrategySpec, StrategySwitches


@dataclass
class WorldConfig:
    preset: str = "quick"  # smoke | quick | full: the synthetic world to generate or reuse from the cache
    seed: int = 0  # world seed
    vision_objective: str = "contrastive"  # contrastive (aligned with language) | classification (Table 5)


@dataclass
class ModelConfig:
    base: str | None = None  # start from this run dir or HF LLaVA dir (stage 2 points at stage 1); else build
    llm: str = "embedded"  # causal-LM directory, or "embedded" for SmolLM2-135M-Instruct
    vision: str = "${tower}"  # vision encoder directory (CLIP or SigLIP)
    projector: str = "linear"  # linear (the paper's) | mlp2x_gelu (LLaVA-1.5)
    vision_feature_layer: int = -2  # which vision hidden layer feeds the projector
    chat_template: str | None = None  # force chatml | vicuna_v1 | llama2_chat; None keeps the tokenizer's
    dtype: str = "float32"  # dtype of the frozen weights: float32 | bfloat16 | float16 (trainable stay fp32)
    seed: int = 0  # projector initialisation seed
    projector_init_scale: float = 1.0  # multiplies the fresh projector's initial weights (stage 1 only)
    projector_init: str = "random"  # random (the paper's) | caption_alignment (warm start from the stage-1 captions)
    projector_init_steps: int = 600  # steps of the caption_alignment warm start (seconds; no LLM forward)
    projector_init_rounds: int = 4  # its self-training rounds (each token refitted onto its nearest caption word)


@dataclass
class DataConfig:
    path: str = "${world}/instruct/mixed.json"  # LLaVA JSON (list or JSON lines)
    image_folder: str = "${world}/images"  # image paths in the JSON are relative to this folder
    data_types: list[str] | None = None  # e.g. [conversation]; None keeps every type
    max_samples: int | None = None  # seeded subsample size
    max_length: int = 2048  # tokens, image tokens included
    truncation: str = "drop"  # drop | text: what to do with over-long samples (image tokens are never cut)
    on_bad_sample: str = "error"  # error | skip
    group_by_length: bool = True  # batch samples of similar length (less padding)
    num_workers: int = 0  # DataLoader worker processes


@dataclass
class TrainConfig(StrategySwitches):
    """Also include_base, include_final_norm, train_embeddings and lora: the strategy's switches (lntune.strategies)."""

    strategy: str = "layernorm"  # finetune | lora | attn-qv | attn-mlp | layernorm | layernorm-simple | connector
    epochs: int = 1  # passes over the data
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs when smaller)
    batch_size: int = 8  # per device, per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate
    projector_lr: float | None = None  # peak learning rate of the connector (LLaVA's --mm_projector_lr); None: lr
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"  # cosine | linear | constant
    max_grad_norm: float | None = 1.0  # gradient clipping; None disables
    on_nonfinite: str = "stop"  # stop | skip: a step whose loss or gradient norm is NaN/inf stops the run or is skipped
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16 (autocast on GPU)
    tf32: bool = True  # allow TF32 matmuls on Ampere+ GPUs
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile each decoder block: a few % faster per step after a one-time compile (~1 min)
    save_steps: int | None = None  # checkpoint every N optimizer steps (None or 0: no checkpoints)
    save_total_limit: int = 2  # keep the newest K checkpoints
    log_steps: int = 1
    track_grads: list[int] | None = None  # decoder layers whose norm gradients are recorded every step (Fig. 4)

    def strategy_spec(self) -> StrategySpec:
        return StrategySpec(self.strategy, **self.switches())


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    world: WorldConfig | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        choices = {
            "model.projector": (self.model.projector, ("linear", "mlp2x_gelu")),
            "model.dtype": (self.model.dtype, ("float32", "bfloat16", "float16")),
            "model.projector_init": (self.model.projector_init, ("random", "caption_alignment")),
            "train.scheduler": (self.train.scheduler, ("cosine", "linear", "constant")),
            "train.mixed_precision": (self.train.mixed_precision, ("no", "bf16", "fp16")),
            "data.truncation": (self.data.truncation, ("drop", "text")),
            "data.on_bad_sample": (self.data.on_bad_sample, ("error", "skip")),
            "train.on_nonfinite": (self.train.on_nonfinite, ("stop", "skip")),
        }
        if self.world is not None:
            choices["world.vision_objective"] = (self.world.vision_objective, ("contrastive", "classification"))
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise LntuneError(f"{key}: {shown(value)} is not one of {', '.join(allowed)}")
        check_ranges(self)
        if self.train.strategy not in STRATEGIES:
            raise LntuneError(f"train.strategy: unknown strategy {shown(self.train.strategy)}; valid: {', '.join(STRATEGIES)}")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        train = data["train"]
        data["train"] = {"strategy": train.pop("strategy"), **train}  # the strategy first, then its switches
        return data


# Every numeric key and its allowed range (low, high, high included?); None values (where allowed) are not checked.
RANGES = {
    "model.projector_init_scale": (0, None), "model.projector_init_steps": (1, None),
    "model.projector_init_rounds": (0, None), "model.seed": (0, None),
    "world.seed": (0, None),
    "data.max_samples": (1, None), "data.max_length": (1, None), "data.num_workers": (0, None),
    "train.epochs": (1, None), "train.max_steps": (1, None), "train.batch_size": (1, None), "train.grad_accum": (1, None),
    "train.lr": (0, None), "train.projector_lr": (0, None), "train.weight_decay": (0, None), "train.warmup_ratio": (0, 1),
    "train.max_grad_norm": (0, None),
    "train.seed": (0, None), "train.save_steps": (0, None), "train.save_total_limit": (0, None), "train.log_steps": (1, None),
    "train.lora.r": (1, None), "train.lora.alpha": (0, None), "train.lora.dropout": (0, 1), "train.track_grads": (0, None),
}
_POSITIVE = {"train.lr", "train.projector_lr", "train.max_grad_norm", "model.projector_init_scale",
             "train.lora.alpha"}  # low excluded
_BELOW_HIGH = {"train.warmup_ratio", "train.lora.dropout"}  # high excluded


def check_ranges(config: RunConfig) -> None:
    """LntuneError naming the key when a numeric value is out of its range (finiteness is checked on load)."""
    for key, (low, high) in RANGES.items():
        node = config
        for part in key.split("."):
            node = getattr(node, part, None) if node is not None else None
        for value in node if isinstance(node, list) else [node]:
            if value is None:
                continue
            if value < low or (key in _POSITIVE and value == low):
                raise LntuneError(f"{key}: must be {'>' if key in _POSITIVE else '>='} {low}, got {value}")
            if high is not None and (value > high or (key in _BELOW_HIGH and value == high)):
                raise LntuneError(f"{key}: must be in [{low}, {high}{')' if key in _BELOW_HIGH else ']'}, got {value}")


def load_config(path=None, overrides=(), data: dict | None = None) -> RunConfig:
    """A RunConfig from a YAML file (or dict) plus `key=value` overrides (dotted keys, YAML values)."""
    source = str(path) if path else "<config>"
    if data is None:
        data = {}
        if path:
            data = read_yaml(Path(path), "config") or {}
    data = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise LntuneError(f"override {shown(item)}: expected key=value")
        key, value = item.split("=", 1)
        _set_dotted(data, key.strip(), parse_yaml(value, f"override {shown(key)}") if value != "" else None)
    return _build(RunConfig, data, source, "")


MAX_CONFIG_BYTES = 1 << 20  # a run config is a few KB; anything this large is not one


def read_yaml(path: Path, what: str):
    """The YAML document in `path`; LntuneError naming the file when it is missing, a folder, binary, huge,
    malformed or uses aliases."""
    if path.is_dir():
        raise LntuneError(f"{path}: is a folder, not a {what} file")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise LntuneError(f"{path}: {size} bytes, too large for a {what} file (at most {MAX_CONFIG_BYTES})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LntuneError(f"{path}: {what} file not found") from None
    except UnicodeDecodeError as err:
        raise LntuneError(f"{path}: not UTF-8 text (byte {err.start}); expected a YAML {what} file") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str):
    """yaml.safe_load of `text`, refusing aliases (`*name`): a few lines of them can expand to gigabytes."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise LntuneError(f"{source}: line {mark.line + 1}, column {mark.column + 1}: YAML aliases "
                                  f"(*{str(event.anchor)[:40]}) "
                                  "are not allowed in lntune configs; write the value out")
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LntuneError(f"{source}: invalid YAML{where}") from None
    except RecursionError:
        raise LntuneError(f"{source}: YAML nested too deeply") from None



def _deep_copy(data):
    return yaml.safe_load(yaml.safe_dump(data))


def _set_dotted(data: dict, key: str, value):
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise LntuneError(f"override {shown(key)}: {shown(part)} is not a section")
    node[parts[-1]] = value


def _build(cls, data, source, prefix):
    if not isinstance(data, dict):
        raise LntuneError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise LntuneError(f"{source}: unknown key {shown(prefix + str(unknown[0]))} (valid keys here: {', '.join(sorted(valid))})")
    kwargs = {name: _coerce(hints[name], value, source, prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint, value, source, key):
    """Check/convert one value against its annotation (dataclass, list, optional, scalar)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise LntuneError(f"{source}: {key} must not be empty")
    for option in (o for o in options if o is not type(None)):
        try:
            return _coerce_one(option, value, source, key)
        except (TypeError, ValueError):
            continue
    raise LntuneError(f"{source}: {key}: {shown(value)} is not a valid {_type_name(hint)}")


def _coerce_one(option, value, source, key):
    if dataclasses.is_dataclass(option):
        if not isinstance(value, dict):
            raise TypeError("not a mapping")
        return _build(option, value, source, key + ".")
    if typing.get_origin(option) is list:
        (item,) = typing.get_args(option)
        items = value if isinstance(value, list) else [value]
        return [_coerce_one(item, v, source, key) for v in items]
    if option is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("not a boolean")
    if option is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.lstrip("-").isdigit()):
            raise TypeError("not an integer")
        return int(value)
    if option is float:
        if isinstance(value, bool):
            raise TypeError("not a number")
        number = float(value)  # YAML reads "2e-3" as a string; float() accepts it
        if not math.isfinite(number):
            raise LntuneError(f"{source}: {key}: must be a finite number, got {shown(value)}")
        return number
    if option is str:
        if isinstance(value, (dict, list)):
            raise TypeError("not a string")
        return str(value)
    raise TypeError(f"unsupported type {option}")


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _paths(config: RunConfig) -> list[str]:
    return [config.data.path, config.data.image_folder, config.model.vision, config.model.base or "", config.model.llm]


def placeholders(config: RunConfig) -> set[str]:
    """The `${name}`s the config's paths use (world, tower, config_dir)."""
    return {name for name in ("world", "tower", "config_dir") if any("${" + name + "}" in t for t in _paths(config))}


def require_world_section(config: RunConfig) -> None:
    if placeholders(config) & {"world", "tower"} and config.world is None:
        raise LntuneError("the config uses ${world}/${tower} but has no `world:` section")


def resolve_paths(config: RunConfig, config_dir: Path | None = None, world=None, tower=None) -> RunConfig:
    """Fill `${world}`, `${tower}` and `${config_dir}` in the config's paths. Pure: the world and tower folders
    are given (lntune.world.cache.prepare_world generates or finds them first)."""
    require_world_section(config)
    values = {"config_dir": str(config_dir or Path.cwd()), "world": world, "tower": tower}
    for name in sorted(placeholders(config), key=list(values).index):
        if values[name] is None:
            raise LntuneError(f"the config uses ${{{name}}} but no {name} folder was given")
    values = {name: str(value) for name, value in values.items() if value is not None}

    def fill(text):
        if text is None:
            return None
        for name, value in values.items():
            text = text.replace("${" + name + "}", value)
        return text

    config.data.path = fill(config.data.path)
    config.data.image_folder = fill(config.data.image_folder)
    config.model.vision = fill(config.model.vision)
    config.model.base = fill(config.model.base)
    config.model.llm = fill(config.model.llm)
    return config
