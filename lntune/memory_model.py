"""Peak training memory per strategy, predicted from shapes: weights, gradients, optimizer states, the
activations autograd keeps, the loss's working set, gradient checkpointing and ZeRO partitioning.

    lntune params --preset llava-llama2-7b --lora-r 64 --memory            # the paper's Table 2 setting
    from lntune.memory_model import Setup, predict_model, paper_table2_gb
    paper_table2_gb("llava-llama2-7b")          # {strategy: predicted peak GB (1e9 bytes)}, Table 2's rows

The activation term lists the tensors autograd saves in a Llama decoder block as lntune runs it (fused
RMSNorm, scaled-dot-product attention, SwiGLU), per token:
  every strategy   the two norms' inputs (a trained norm also its output), attention's query, key, value
                   and output (key and value repeated to every head when a padding mask stops SDPA's
                   grouped-query path), SiLU's input and output and the up projection's output; softmax
                   statistics, norm scales and SDPA's float copy of a padding mask
  a trained linear its input (q/k/v share theirs, gate/up share theirs; o_proj and down_proj own one)
  LoRA             the inputs of every adapted linear, the rank-r outputs of its A matrices, and with
                   dropout one byte per adapted input element for the kept-mask (lntune/lora_dropout.py)
With gradient checkpointing a block keeps only its input, and one block's activations are rebuilt at a
time in the backward pass. Outside the blocks: the final norm's input, the trained projector's input and
the loss (lntune's head on supervised rows in chunks, or the full logits of an HF/LLaVA loss).

The peak is the largest of five moments: the end of the forward pass (every saved activation, the loss's
working set, a trained head's gradient that lntune's loss computes early, autocast's 16-bit weight copies),
the loss's backward (the logits' gradient, a trained head's weight gradient), the first block's backward
(one block rebuilt under checkpointing, its gradient temporaries), the end of the backward pass (every
gradient; a trained tied embedding/head matrix gets two gradients that autograd sums out of place), and
the optimizer step (DeepSpeed's fp32 copy of the gradient partition). Memory is static state + that peak.

Static state by framework:
  lntune     frozen weights in the model's dtype; trained weights, their gradients and AdamW's two moments
             in fp32 (a 16-bit model's trained tensors are cast to fp32 master weights in place)
  deepspeed  every weight and gradient in 16 bits; fp32 master weights + AdamW moments in the optimizer
             (12 bytes per trained value, ZeRO's K); ZeRO stage 1 partitions the optimizer's 12 bytes over
             the processes, stage 2 also the gradients, stage 3 also the weights
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lntune.errors import LntuneError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
OPTIMIZER_STATES = {"adamw": 2, "sgd": 0}  # fp32 tensors per trained value (SGD without momentum: none)
FRAMEWORKS = ("lntune", "deepspeed")
LOSSES = ("lntune", "full-logits")
_CHUNK_ELEMENTS = 8 * 2**20  # lntune/train/loss.py's rows per chunk x vocabulary
AFTER_BACKWARD = ("end of backward", "optimizer step")  # moments when activations are gone and gradients all exist


@dataclass(frozen=True)
class Setup:
    """What besides the model decides training memory. `seq_len`: padded tokens per sample, image tokens
    included; `supervised`: supervised tokens in the micro-batch; `images`: images in it (default one per sample)."""

    batch_size: int
    seq_len: int
    supervised: int
    images: int | None = None
    weight_dtype: str = "float32"  # frozen weights
    compute_dtype: str | None = None  # activations (autocast); default: the weights' dtype
    gradient_checkpointing: bool = False
    optimizer: str = "adamw"
    framework: str = "lntune"
    zero_stage: int = 0
    world_size: int = 1
    loss: str = "lntune"
    padding: bool = True  # the batch has padding: SDPA gets a mask (a float copy per block) and, with it, no
    # grouped-query path (key and value repeated to every head)

    def check(self) -> None:
        for name, value, allowed in (("weight_dtype", self.weight_dtype, DTYPE_BYTES), ("optimizer", self.optimizer, OPTIMIZER_STATES),
                                     ("framework", self.framework, FRAMEWORKS), ("loss", self.loss, LOSSES)):
            if value not in allowed:
                raise LntuneError(f"memory model: {name} {value!r} is not one of {', '.join(allowed)}")
        if self.compute_dtype is not None and self.compute_dtype not in DTYPE_BYTES:
            raise LntuneError(f"memory model: compute_dtype {self.compute_dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
        if self.zero_stage not in (0, 1, 2, 3) or self.world_size < 1:
            raise LntuneError(f"memory model: zero_stage must be 0-3 and world_size >= 1 (got {self.zero_stage}, {self.world_size})")
        if min(self.batch_size, self.seq_len) < 1 or self.supervised < 0:
            raise LntuneError("memory model: batch_size and seq_len must be >= 1, supervised >= 0")

    @property
    def tokens(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def act_bytes(self) -> int:
        return DTYPE_BYTES[self.compute_dtype or self.weight_dtype]

    @property
    def image_count(self) -> int:
        return self.batch_size if self.images is None else self.images


@dataclass(frozen=True)
class Shapes:
    """The sizes the activation term needs, read from a LLaVA config."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    vision_hidden: int
    vision_patches: int  # the projector's input rows per image
    projector: str  # "linear" | "mlp2x_gelu"
    tied: bool = False  # the output head shares the word embeddings' matrix

    @classmethod
    def of(cls, config) -> "Shapes":
        from lntune.model.projector import projector_type

        text, vision = config.get_text_config(), config.vision_config
        heads = text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        patches = (vision.image_size // vision.patch_size) ** 2
        tied = bool(getattr(text, "tie_word_embeddings", False) or getattr(config, "tie_word_embeddings", False))
        return cls(text.hidden_size, text.intermediate_size, text.num_hidden_layers, heads,
                   getattr(text, "num_key_value_heads", None) or heads, head_dim, text.vocab_size,
                   vision.hidden_size, patches, projector_type(config), tied)


@dataclass(frozen=True)
class Trained:
    """What a strategy trains, as the memory model needs it (`Trained.of(model)` after `apply_strategy`)."""

    frozen: int  # frozen parameter values
    trainable: int  # trained parameter values
    linears: frozenset = frozenset()  # trained decoder linears by kind: "qkv" (any of q/k/v), "o", "gate_up", "down"
    lora_r: int = 0  # LoRA rank (0: no adapters)
    lora_dropout: float = 0.0
    head: bool = False  # the output head trains
    projector: bool = False  # the connector trains
    norms: bool = False  # some decoder norm trains
    buffer_bytes: int = 0  # the model's buffers (rotary frequencies, position ids), counted with the weights
    trainable_tensors: int = 0  # AdamW keeps a 4-byte step count per trained tensor
    trained_linear: int = 0  # trained values in linear layers' weights: autocast keeps a 16-bit copy of each

    @classmethod
    def of(cls, model, lora_dropout: float = 0.0) -> "Trained":
        """Read from a model (real or on the meta device) whose strategy is applied."""
        from torch import nn

        from lntune.accounting import count, requires_grad_names

        names = requires_grad_names(model)
        trainable, total = count(model, names)
        kinds = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "o", "gate_proj": "gate_up",
                 "up_proj": "gate_up", "down_proj": "down"}
        linears, rank = set(), 0
        for name, param in model.named_parameters():
            if ".layers." not in name or not param.requires_grad:
                continue
            parts = name.split(".")
            kind = next((kinds[p] for p in parts if p in kinds), None)
            if ".lora_A." in name:
                rank = param.shape[0]
            if kind:
                linears.add(kind)
        head = model.get_output_embeddings()
        buffers = {id(b): b.numel() * b.element_size() for b in model.buffers()}
        linear = {id(m.weight): m.weight.numel() for m in model.modules()
                  if isinstance(m, nn.Linear) and m.weight.requires_grad}
        return cls(total - trainable, trainable, frozenset(linears), rank, lora_dropout if rank else 0.0,
                   head is not None and head.weight.requires_grad,
                   any("multi_modal_projector." in n for n in names),
                   any(".layers." in n and "norm" in n for n in names), sum(buffers.values()),
                   len({id(p) for p in model.parameters() if p.requires_grad}), sum(linear.values()))


@dataclass
class Prediction:
    """Bytes of each part; `peak` is what the model predicts, `moment` where it is reached."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # saved for the backward pass at the end of the forward pass
    working: int  # temporaries at the peak moment (loss chunks, a block's gradients, the step's fp32 copy)
    early_gradients: int  # what exists only from forward to backward besides activations: gradients lntune's loss
    # makes early (a trained head's), autocast's 16-bit copies of fp32 trained weights
    peak: int
    moment: str
    details: dict = field(default_factory=dict)

    def gb(self) -> float:
        return self.peak / 1e9

    def to_dict(self) -> dict:
        return asdict(self)


def block_saved_per_token(shapes: Shapes, trained: Trained, setup: Setup) -> float:
    """Bytes one decoder block keeps for its backward pass, per token (no checkpointing)."""
    s, a = shapes, setup.act_bytes
    attn = s.heads * s.head_dim
    kv = attn if setup.padding else s.kv_heads * s.head_dim
    norms = 2 * (2 if trained.norms else 1) * s.hidden  # a norm keeps its input, a trained one also its output
    elements = norms + attn + 2 * kv + attn + 3 * s.intermediate  # norms, q, k, v, attention output, SwiGLU
    fp32 = 2 + s.heads  # the norms' scales, attention's log-sum-exp per head
    if setup.padding:  # SDPA's float copy of the padding mask, one per block
        fp32 += setup.seq_len
    inputs = {"qkv": s.hidden, "o": attn, "gate_up": s.hidden, "down": s.intermediate}
    adapted = set(inputs) if trained.lora_r else set()
    elements += sum(inputs[k] for k in set(trained.linears) | adapted)
    extra_bytes = 0.0
    if trained.lora_r:
        elements += 7 * trained.lora_r  # A's outputs, B's inputs
        if trained.lora_dropout > 0:  # one kept-mask byte per adapted input element, each module its own
            extra_bytes = 3 * s.hidden + attn + 2 * s.hidden + s.intermediate
    return elements * a + fp32 * 4 + extra_bytes


def predict(shapes: Shapes, trained: Trained, setup: Setup) -> Prediction:
    """The memory of one training step at its peak (see the module docstring)."""
    setup.check()
    s, a, t = shapes, setup.act_bytes, setup.tokens
    world, stage = setup.world_size, setup.zero_stage
    deepspeed = setup.framework == "deepspeed"
    w16 = DTYPE_BYTES[setup.weight_dtype]

    # static state
    if deepspeed:
        weights = (trained.frozen + trained.trainable) * w16 / (world if stage >= 3 else 1) + trained.buffer_bytes
        gradients = trained.trainable * w16 / (world if stage >= 2 else 1)
        optimizer = trained.trainable * (4 + 4 * OPTIMIZER_STATES[setup.optimizer]) / (world if stage >= 1 else 1)
        step_copy = trained.trainable * 4 / (world if stage >= 1 else 1)  # the fp32 gradient partition at the step
    else:
        weights = trained.frozen * w16 + trained.trainable * 4 + trained.buffer_bytes
        gradients = trained.trainable * 4
        states = OPTIMIZER_STATES[setup.optimizer]
        optimizer = (trained.trainable * states + (trained.trainable_tensors if states else 0)) * 4
        step_copy = 0

    # activations: blocks, then what is outside them
    block = block_saved_per_token(s, trained, setup) * t
    needs_grad = trained.trainable > 0
    if setup.gradient_checkpointing:
        blocks_saved, rebuilt = s.layers * s.hidden * a * t, block
    else:
        blocks_saved, rebuilt = s.layers * block, 0
    outside = (s.hidden * a + 4) * t  # the final norm's input and scale
    if trained.projector:
        rows = setup.image_count * s.vision_patches
        outside += rows * s.vision_hidden * a + (2 * rows * s.hidden * a if s.projector == "mlp2x_gelu" else 0)
    loss_saved, loss_working, loss_backward, head_grad, early = _loss(s, trained, setup)
    grad_bytes = w16 if deepspeed else 4
    if setup.compute_dtype and DTYPE_BYTES[setup.compute_dtype] < 4 and not deepspeed:
        early += trained.trained_linear * a  # autocast's cached 16-bit copies of fp32 trained weights
    activations = (blocks_saved + outside + loss_saved) if needs_grad else 0
    block_grads = t * (3 * s.intermediate + s.hidden) * a  # a SwiGLU block's gradient temporaries

    # a trained tied matrix gets two gradients (head, embedding) that autograd sums out of place at the end
    tied_sum = 2 * s.vocab * s.hidden * grad_bytes if s.tied and trained.head else 0
    moments = {
        "end of forward": activations + loss_working + early,
        "loss backward": activations + max(loss_backward, head_grad) + early,
        "first block's backward": activations - loss_saved + head_grad + rebuilt + block_grads + early,
        "end of backward": gradients + tied_sum,
        "optimizer step": gradients + step_copy,
    }
    moment = max(moments, key=moments.get)
    peak = weights + optimizer + moments[moment]
    working = moments[moment] - (gradients if moment in AFTER_BACKWARD else activations + early)
    return Prediction(int(weights), int(gradients), int(optimizer), int(activations), int(working), int(early),
                      int(peak), moment, {"moments": {k: int(v) for k, v in moments.items()}, "block_per_token": block / t})


def _loss(s: Shapes, trained: Trained, setup: Setup) -> tuple[float, float, float, float, float]:
    """(saved for backward, temporaries at the end of the forward pass, temporaries of its backward while the
    saved logits live, the head's weight gradient made in the backward pass once they are freed, gradients made
    in the forward pass)."""
    a, rows = setup.act_bytes, setup.supervised
    head_grad = s.vocab * s.hidden * (DTYPE_BYTES[setup.weight_dtype] if setup.framework == "deepspeed" else 4)
    head_grad = head_grad if trained.head else 0
    if setup.loss == "full-logits":  # logits of every position, a shifted copy, their log-softmax
        logits = setup.tokens * s.vocab * a
        saved = logits * 2 + (setup.tokens * s.hidden * a if trained.head else 0)
        return saved, logits, 2 * logits, head_grad, 0  # the gradients of the loss and of the log-softmax
    if trained.head and 4 * s.hidden > 10 * rows:  # lntune/train/loss.py's plain path: rows x vocabulary in fp32
        logits = rows * s.vocab * 4
        return rows * s.hidden * a + logits, logits, 2 * logits, head_grad, 0
    chunk = min(rows, max(16, _CHUNK_ELEMENTS // s.vocab))
    saved = rows * s.hidden * a  # the hidden states' gradient, computed in the forward pass
    working = chunk * s.vocab * (4 + (a if a != 4 else 0)) + rows * s.hidden * a  # a chunk's logits; the gathered rows
    early = head_grad  # the head's weight gradient, computed in the forward pass
    return saved, working, rows * s.hidden * a, 0, early


def predict_model(model, setup: Setup, lora_dropout: float = 0.0) -> Prediction:
    """Predict for a model (real or meta) whose strategy is applied."""
    return predict(Shapes.of(model.config), Trained.of(model, lora_dropout), setup)


def predict_for_trainer(trainer, batch: dict) -> dict:
    """The prediction for a set-up `lntune.train.loop.Trainer` and one of its micro-batches, as a dict."""
    t = trainer.config.train
    ids = batch["input_ids"]
    setup = Setup(batch_size=ids.shape[0], seq_len=ids.shape[1], supervised=int((batch["labels"][:, 1:] != -100).sum()),
                  images=int(batch["pixel_values"].shape[0]) if "pixel_values" in batch else 0,
                  weight_dtype=trainer.config.model.dtype,
                  compute_dtype="bfloat16" if t.mixed_precision == "bf16" else "float16" if t.mixed_precision == "fp16" else None,
                  gradient_checkpointing=t.gradient_checkpointing,
                  padding=bool((batch["attention_mask"] == 0).any()))
    shapes = Shapes.of(trainer.model.config)
    trained = Trained.of(trainer.model, t.lora.dropout if trainer.spec.name == "lora" else 0.0)
    prediction = predict(shapes, trained, setup)
    return {"predicted_bytes": prediction.peak, "predicted": prediction.to_dict(), "setup": asdict(setup),
            "shapes": asdict(shapes), "trained": {**asdict(trained), "linears": sorted(trained.linears)}}


# The paper's Table 2 setting as far as it states it (DeepSpeed, gradient checkpointing, one 80 GB A100),
# with what it leaves open filled in from LLaVA's training scripts; docs/benchmarks.md lists each choice.
PAPER_BATCH = dict(batch_size=4, image_tokens=256, text_tokens=400, supervised_per_sample=200)


def paper_setup(batch_size: int = PAPER_BATCH["batch_size"], zero_stage: int = 2) -> Setup:
    """bf16 weights, DeepSpeed ZeRO on one GPU, gradient checkpointing, AdamW, LLaVA's full-logits loss, a
    batch of `batch_size` samples of BOS + 256 image tokens + 400 text tokens (200 supervised)."""
    length = 1 + PAPER_BATCH["image_tokens"] + PAPER_BATCH["text_tokens"]
    return Setup(batch_size=batch_size, seq_len=length, supervised=batch_size * PAPER_BATCH["supervised_per_sample"],
                 weight_dtype="bfloat16", gradient_checkpointing=True, framework="deepspeed", zero_stage=zero_stage,
                 loss="full-logits", padding=False)


def predict_strategies(config, setup: Setup, strategies=None, lora_r: int = 64, lora_dropout: float = 0.05,
                       include_final_norm: bool = False) -> dict:
    """{strategy: Prediction} for a LLaVA config (built on the meta device: no weights, seconds for 13B)."""
    from lntune.accounting import meta_model
    from lntune.strategies import PAPER_STRATEGIES, LoraOptions, StrategySpec, apply_strategy

    lora = LoraOptions(r=lora_r, alpha=2 * lora_r, dropout=lora_dropout)
    shapes = Shapes.of(config)
    shared = None
    out = {}
    for name in strategies or PAPER_STRATEGIES:
        if name == "lora":
            model = meta_model(config)
        else:
            model = shared = shared or meta_model(config)
        apply_strategy(model, StrategySpec(name, include_final_norm=include_final_norm, lora=lora))
        out[name] = predict(shapes, Trained.of(model, lora_dropout), setup)
    return out


def paper_table2_gb(preset: str = "llava-llama2-7b", batch_size: int = PAPER_BATCH["batch_size"],
                    lora_r: int = 64) -> dict:
    """{strategy: predicted peak GB (1e9 bytes)} for a paper preset of lntune/configs/presets/params.yaml in
    the paper's Table 2 setting (`paper_setup`). For lntune/reproduce's Table 2 "predicted" column."""
    from lntune.accounting import preset_config

    predictions = predict_strategies(preset_config(preset), paper_setup(batch_size), lora_r=lora_r)
    return {name: round(p.gb(), 1) for name, p in predictions.items()}
