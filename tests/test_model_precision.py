"""Precision helpers: which CPUs count as native bf16, the quickstart's dtype resolution, and the LM head's
contiguous-input hook (same logits as a contiguous input, registered once, on every loaded model)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import tiny_llava  # noqa: E402

from lntune.errors import LntuneError  # noqa: E402
from lntune.model.load import contiguous_head_input  # noqa: E402
from lntune.model.precision import cpu_has_native_bf16, fastest_dtype  # noqa: E402
from lntune.quickstart import resolve_dtype  # noqa: E402

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx512f amx_tile amx_bf16 amx_int8\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(ZEN4)
    assert cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert not cpu_has_native_bf16(SKYLAKE)
    assert not cpu_has_native_bf16("")
    if not torch.cuda.is_available():
        assert fastest_dtype("cuda:0") == "float32"  # no GPU, so no bf16 tensor cores
    assert fastest_dtype("cpu") == ("bfloat16" if cpu_has_native_bf16() else "float32")


def test_quickstart_dtype_resolution():
    assert resolve_dtype("float32") == "float32"
    assert resolve_dtype("bfloat16") == "bfloat16"
    assert resolve_dtype("auto") == fastest_dtype("cpu")  # evaluation runs on the CPU
    assert resolve_dtype("auto", training=True) == fastest_dtype("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(LntuneError, match="dtype must be float32, bfloat16 or auto, got 'fp8'"):
        resolve_dtype("fp8")


def test_head_hook_gives_the_logits_of_a_contiguous_input():
    model, _ = tiny_llava(seed=0)
    head = model.get_output_embeddings()
    hidden = torch.randn(4, 5, head.in_features)
    strided = hidden[:, -1:, :]
    assert not strided.is_contiguous()
    expected = head(strided.contiguous())
    assert contiguous_head_input(model) is model
    contiguous_head_input(model)  # a second call adds no second hook
    assert len(head._forward_pre_hooks) == 1
    calls = []
    head.register_forward_pre_hook(lambda module, args: calls.append(args[0].is_contiguous()))
    torch.testing.assert_close(head(strided), expected, rtol=0, atol=0)
    assert calls == [True]  # the later hook saw the input the lntune hook made contiguous


def test_attention_is_eager_only_for_half_precision_on_a_cpu():
    from lntune.model.precision import fastest_attention

    model, _ = tiny_llava(seed=0)
    built = model.config.text_config._attn_implementation
    fastest_attention(model, "cpu", torch.float32)
    assert model.config.text_config._attn_implementation == built
    fastest_attention(model, "cuda", torch.bfloat16)
    assert model.config.text_config._attn_implementation == built
    assert fastest_attention(model, "cpu", torch.bfloat16) is model
    assert model.config.text_config._attn_implementation == "eager"


def test_bf16_generation_on_a_cpu_runs_eager_and_is_deterministic():
    from lntune.eval.generate import generate_tokens, render_prompt
    from test_eval_helpers import color_image

    model, processor = tiny_llava(seed=0)
    model = model.to(torch.bfloat16)
    prompts = [render_prompt(processor, [{"role": "user", "content": "<image>\n" + q}]) for q in ("yes", "left right")]
    images = [color_image(i) for i in range(2)]
    first = generate_tokens(model, processor, prompts, images, max_new_tokens=6)
    assert model.config.text_config._attn_implementation == "eager"
    assert generate_tokens(model, processor, prompts, images, max_new_tokens=6) == first
    assert all(len(row) > 0 for row in first)


def test_training_loss_keeps_its_fused_head_with_the_lntune_hook_only():
    from torch import nn

    from lntune.train.loss import head_cross_entropy

    class WithHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 50, bias=False).requires_grad_(False)

        def get_output_embeddings(self):
            return self.head

    model = WithHead()
    hidden = torch.randn(6, 8, requires_grad=True)
    targets = torch.arange(6)
    expected = nn.functional.cross_entropy(model.head(hidden), targets, reduction="sum")
    contiguous_head_input(model)
    fused = head_cross_entropy(hidden, model.head, targets)
    assert type(fused.grad_fn).__name__ == "_HeadCrossEntropyBackward"
    torch.testing.assert_close(fused, expected)
    model.head.register_forward_pre_hook(lambda module, args: None)  # a hook of someone else's: run the head itself
    assert type(head_cross_entropy(hidden, model.head, targets).grad_fn).__name__ != "_HeadCrossEntropyBackward"
