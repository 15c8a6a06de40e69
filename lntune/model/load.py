"""Load and save lntune models.

`load_mllm(path)` accepts three kinds of directory:
  * an HF LLaVA checkpoint (plain `transformers`, or lntune's linear-projector variant);
  * an lntune run directory (`lntune.json` + `trainable.safetensors`): its base is rebuilt or loaded, the
    strategy re-applied (LoRA adapters re-injected) and only the trained tensors loaded on top;
  * an embedded/assembled recipe stored in such a run (`"base": {"kind": "build", ...}`).

`lntune.json` holds `{"format": 1, "base": BASE, "strategy": {...}, "config": {...}}` where BASE is
`{"kind": "build", "llm", "vision", "projector", "vision_feature_layer", "seed"}`, `{"kind": "hf", "path"}`
or `{"kind": "run", "path"}` (stage 2 points at its stage-1 run). The string "embedded" as `llm` means
the embedded SmolLM2, resolved on the machine that loads it. Paths are references that survive moving the
run (a cache key under $LNTUNE_HOME, or relative to the run + absolute; lntune/run_refs.py).
"""

from pathlib import Path

from lntune.errors import LntuneError
from lntune.run_dir import RUN_FILE, TRAINABLE_FILE, RunDir


def load_mllm(path, dtype=None):
    """(model, processor) from an HF LLaVA directory or an lntune run directory."""
    path = Path(path)
    if RunDir(path).is_run:
        return _load_run(path, dtype)
    if (path / "config.json").is_file():
        return _load_hf(path, dtype)
    raise LntuneError(f"{path}: neither an lntune run (no {RUN_FILE}) nor an HF model directory (no config.json)")


def contiguous_head_input(model):
    """Make the LM head's input contiguous; returns `model`. Idempotent.

    Generation keeps the last position only (`hidden[:, -1:, :]`, a strided view); torch's linear on a strided
    3-D input falls back to a batched matmul that first copies the weight once per row: for SmolLM2's 49k-word
    head and 64 rows, a 1.8-billion-element copy per prefill, 2.3 s in bf16 on 2 CPU cores."""
    head = model.get_output_embeddings()
    if head is not None and getattr(head, LNTUNE_HEAD_HOOK, None) is None:
        handle = head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
        setattr(head, LNTUNE_HEAD_HOOK, handle.id)  # the training loss tells this hook from others by it
    return model


LNTUNE_HEAD_HOOK = "_lntune_contiguous_input_hook"


def ready_for_inference(model):
    """`model` with its LM head fed a contiguous input and the fastest attention for its device and dtype
    (lntune.model.precision.fastest_attention); returns it. Idempotent and cheap, so generation and scoring
    call it on whatever model they are handed."""
    from lntune.model.precision import fastest_attention

    return fastest_attention(contiguous_head_input(model), model.device, model.dtype)


def load_for_inference(path, dtype: str = "auto", device: str = "auto"):
    """(model, processor) from `path` in eval mode, on `device` ("auto": cuda when available) in one `dtype`
    ("auto": bfloat16 on a GPU with bf16 tensor cores, else float32): what `lntune eval`, `chat` and `analyze` run.

    On a CPU "auto" is float32 whatever its instructions, so that a command's answers do not change with the CPU
    it runs on; `dtype="bfloat16"` is faster where the CPU has bf16 matrix instructions (docs/benchmarks.md)."""
    import torch

    from lntune.model.precision import fastest_dtype

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = fastest_dtype(device) if str(device).startswith("cuda") else "float32"
    dtype = getattr(torch, dtype)
    model, processor = load_mllm(path, dtype=dtype)
    # one dtype everywhere: a run's trained norms are kept in fp32 next to bf16 weights
    return ready_for_inference(model.to(device=device, dtype=dtype).eval()), processor


def load_base(base: dict, dtype=None, relative_to: Path | None = None):
    """(model, processor) for a BASE entry of lntune.json."""
    from lntune.run_refs import resolve_ref

    kind = base.get("kind")
    source = relative_to / RUN_FILE if relative_to is not None else "base"
    if kind == "build":
        from lntune.model.build import build_mllm
        from lntune.model.embedded import embedded_llm_dir

        llm = embedded_llm_dir() if base["llm"] == "embedded" else resolve_ref(base["llm"], relative_to, "LLM", source)
        vision = resolve_ref(base["vision"], relative_to, "vision tower", source)
        return build_mllm(llm, vision, projector=base.get("projector", "linear"),
                          vision_feature_layer=base.get("vision_feature_layer", -2), dtype=dtype,
                          seed=base.get("seed", 0), chat_template=base.get("chat_template"),
                          projector_init_scale=base.get("projector_init_scale", 1.0))
    if kind in ("hf", "run"):
        what = "base run" if kind == "run" else "base model"
        return load_mllm(resolve_ref(base["path"], relative_to, what, source, check=_same_weights(base, what)),
                         dtype=dtype)
    raise LntuneError(f"unknown base kind {kind!r} in {RUN_FILE} (expected build, hf or run)")


def _same_weights(base: dict, what: str):
    """A check for resolve_ref: None when a candidate base holds the weights lntune.json pinned (runs written
    before the pin have none: any candidate passes), else why not."""
    pinned = base.get("weights")
    if not pinned:
        return None

    def check(candidate: Path):
        from lntune.fingerprint import model_fingerprint

        found = model_fingerprint(candidate)
        return None if found == pinned else (f"the {what} at {candidate} holds other weights (fingerprint "
                                            f"{found[:12]}, this run was trained on {pinned[:12]})")
    return check


def _load_hf(path: Path, dtype):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from lntune.model.projector import LntuneLlavaForConditionalGeneration

    from lntune.jsonio import load_json

    config = load_json(path / "config.json", "a Hugging Face model config")
    if not isinstance(config, dict) or config.get("model_type") != "llava":
        found = config.get("model_type") if isinstance(config, dict) else None
        raise LntuneError(f"{path}/config.json: model_type is {found!r}, expected 'llava'")
    cls = LntuneLlavaForConditionalGeneration if config.get("projector_type") == "linear" else LlavaForConditionalGeneration
    model = cls.from_pretrained(path, dtype=dtype)
    return model, AutoProcessor.from_pretrained(path)


def _load_run(path: Path, dtype):
    from lntune.strategies import StrategySpec, apply_strategy

    meta = read_run_file(path)
    model, processor = load_base(meta["base"], dtype=dtype, relative_to=path)
    weights_file = path / TRAINABLE_FILE
    if not weights_file.is_file():
        raise LntuneError(f"{weights_file} is missing: the run has not finished (resume it) or the folder is incomplete")
    apply_strategy(model, StrategySpec.from_dict(meta["strategy"]))
    load_trainable(model, read_tensors(weights_file), source=weights_file)
    model.requires_grad_(False)
    if dtype is not None:
        model.to(dtype)  # trained tensors were kept in fp32 (master weights); inference wants one dtype
    return model, processor


def read_run_file(path: Path) -> dict:
    from lntune.jsonio import load_json

    meta = load_json(path / RUN_FILE, "an lntune run's description (base, strategy)")
    if not isinstance(meta, dict):
        raise LntuneError(f"{path / RUN_FILE}: expected a JSON object with 'base' and 'strategy'")
    for key in ("base", "strategy"):
        if not isinstance(meta.get(key), dict):
            raise LntuneError(f"{path / RUN_FILE}: {'missing key' if key not in meta else 'not an object:'} {key!r}")
    return meta


def read_tensors(path: Path) -> dict:
    """The tensors of a safetensors file; LntuneError naming the file when it is missing, cut short or not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise LntuneError(f"{path}: file not found") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise LntuneError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0][:120]}); the "
                          "file is damaged or cut short") from None


def load_trainable(model, tensors: dict, source) -> None:
    """Copy saved trainable tensors into the model (sharded or not); every saved name must exist with the same shape."""
    import torch

    params = dict(model.named_parameters())
    unknown = [name for name in tensors if name not in params]
    if unknown:
        raise LntuneError(f"{source}: {len(unknown)} tensors do not exist in the model, e.g. {unknown[:3]}")
    # Every tensor the strategy trains must be there: one left out would silently keep its base value.
    missing = [name for name, param in params.items() if param.requires_grad and name not in tensors]
    if missing:
        raise LntuneError(f"{source}: {len(missing)} of the run's {len(missing) + len(tensors)} trained tensors are "
                          f"missing, e.g. {missing[:3]}; the file is incomplete")
    for name, value in tensors.items():
        if params[name].shape != value.shape:
            raise LntuneError(f"{source}: {name} has shape {tuple(value.shape)}, the model expects {tuple(params[name].shape)}")
        if value.dtype.is_floating_point != params[name].dtype.is_floating_point or value.dtype == torch.bool:
            raise LntuneError(f"{source}: {name} has dtype {str(value.dtype).removeprefix('torch.')}, the model "
                              f"expects {str(params[name].dtype).removeprefix('torch.')}")
    with torch.no_grad():
        for name, value in tensors.items():
            _copy_into(params[name], value.to(params[name].dtype))


def _copy_into(param, value) -> None:
    """param.copy_(value); into an FSDP2-sharded parameter (a DTensor) only this process's shard of it."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(param, DTensor):  # every process has the whole value: cut its own shard, no communication
        param.to_local().copy_(distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=None).to_local())
    else:
        param.copy_(value)


def save_mllm(model, processor, out, kind: str | None = None) -> Path:
    """Write a full HF checkpoint (+ processor) atomically: a temp folder renamed into place (marked as lntune's
    `kind` of output when given: lntune/ownership.py)."""
    from lntune.locks import replace_folder
    from lntune.ownership import replace_owned_folder

    def write(tmp):
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)

    return replace_owned_folder(Path(out), kind, write) if kind else replace_folder(Path(out), write)
