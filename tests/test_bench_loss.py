"""The chunked head + cross-entropy of lntune/train/loss.py equals the plain one, in value and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lntune.train import loss as loss_module
from lntune.train.loss import head_cross_entropy


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(loss_module, "_CHUNK_ELEMENTS", 16 * 300)  # 16 rows per chunk of a 300-word vocabulary


def _case(rows, train_head, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(24, 300, bias=False).requires_grad_(train_head)
    hidden = torch.randn(rows, 24, requires_grad=True)
    targets = torch.randint(0, 300, (rows,))
    return head, hidden, targets


def _grads(fn, head, hidden, targets):
    hidden.grad = head.weight.grad = None
    (fn(hidden, head, targets) / 7.0).backward()  # a divisor, as SupervisedLoss applies
    return hidden.grad.clone(), None if head.weight.grad is None else head.weight.grad.clone()


@pytest.mark.parametrize("train_head", [False, True])
def test_chunked_loss_and_gradients_equal_plain_cross_entropy(small_chunks, train_head):
    head, hidden, targets = _case(rows=50, train_head=train_head)  # 4 chunks, the last one short
    plain = lambda h, m, t: F.cross_entropy(m(h), t, reduction="sum")
    value = head_cross_entropy(hidden, head, targets)
    assert type(value.grad_fn).__name__ == "_HeadCrossEntropyBackward"
    assert value.item() == pytest.approx(plain(hidden, head, targets).item(), rel=1e-6)
    ours, reference = _grads(head_cross_entropy, head, hidden, targets), _grads(plain, head, hidden, targets)
    assert torch.allclose(ours[0], reference[0], atol=1e-7)
    if train_head:
        assert torch.allclose(ours[1], reference[1], atol=1e-7)
    else:
        assert ours[1] is None and reference[1] is None


def test_wide_trained_head_with_few_rows_keeps_the_plain_path(small_chunks):
    head, hidden, targets = _case(rows=9, train_head=True)  # 4 x 24 > 10 x 9: the weight gradient would cost more
    assert type(head_cross_entropy(hidden, head, targets).grad_fn).__name__ == "NllLossBackward0"
    head.requires_grad_(False)  # a frozen head holds nothing: always chunked
    assert type(head_cross_entropy(hidden, head, targets).grad_fn).__name__ == "_HeadCrossEntropyBackward"


def test_no_grad_and_empty_batches(small_chunks):
    head, hidden, targets = _case(rows=20, train_head=True)
    with torch.no_grad():
        value = head_cross_entropy(hidden, head, targets)
    assert value.grad_fn is None and value.item() == pytest.approx(F.cross_entropy(head(hidden), targets, reduction="sum").item(), rel=1e-6)
    empty = head_cross_entropy(hidden[:0].detach().requires_grad_(), head.requires_grad_(False), targets[:0])
    assert empty.item() == 0.0
