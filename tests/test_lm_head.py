"""rlft.compat.install_cpu_lm_head: on a CPU, TRL's fused LM head scores only the labelled positions, in one GEMM, and returns what TRL's
own kernel returns (log-probs, entropy, the other statistics, gradients)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.kernels import ChunkedLogProbFunction
from trl.trainer import utils

from rlft import compat

OUTPUTS = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


@pytest.fixture
def patched(monkeypatch):
    """install() for this test only: TRL's module globals come back afterwards."""
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", utils._ChunkedLogProbFunction)
    monkeypatch.setattr(utils, "_use_triton", utils._use_triton)
    monkeypatch.setenv("RLFT_CPU_LM_HEAD", "1")
    assert compat.install_cpu_lm_head() and compat.install_cpu_lm_head()  # idempotent
    return utils._ChunkedLogProbFunction


@pytest.mark.parametrize("softcap, scale, temperature", [(None, 1.0, 1.0), (30.0, 0.5, 0.7)])
def test_log_probs_equal_trl_kernel_and_gradients(softcap, scale, temperature):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight, bias = torch.randn(300, 16) * 0.5, torch.randn(300) * 0.1
    targets = torch.randint(0, 300, (37,))
    ours = compat.lm_head_log_probs(hidden, weight, bias, targets, temperature, softcap, scale, OUTPUTS)
    (ours[0].sum() + ours[1].sum()).backward()
    grad, hidden.grad = hidden.grad.clone(), None
    theirs = ChunkedLogProbFunction.apply(hidden, weight, bias, targets, temperature, 128, softcap, scale, OUTPUTS)
    (theirs[0].sum() + theirs[1].sum()).backward()
    for a, b in zip(ours, theirs):
        if a.dtype == torch.bool:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grad, hidden.grad, rtol=1e-4, atol=1e-4)
    assert ours[1].requires_grad and not ours[2].requires_grad  # entropy carries a gradient, the statistics none


def test_fused_forward_scores_only_labelled_positions_with_the_same_loss(tiny_model_dir, patched, monkeypatch):
    """A real model through TRL's fused forward: same loss, log-probs and gradients, and the head sees only the
    labelled positions (the prompt and padding are left out)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    ids = torch.randint(5, 1000, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :6] = -100  # the prompt

    def run():
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out, model.model.embed_tokens.weight.grad.clone()

    ours, our_grad = run()
    scored = []
    native = compat.lm_head_log_probs
    monkeypatch.setattr(compat, "lm_head_log_probs", lambda hidden, *a: scored.append(hidden.size(0)) or native(hidden, *a))
    run()
    assert scored == [int((labels[:, 1:] != -100).sum())] == [3 * 6]
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", ChunkedLogProbFunction)  # TRL's own
    monkeypatch.setattr(utils, "_use_triton", lambda device: False)
    theirs, their_grad = run()
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=1e-5, atol=1e-5)
    keep = labels[:, 1:] != -100
    torch.testing.assert_close(ours.log_probs[keep], theirs.log_probs[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.entropy[keep], theirs.entropy[keep], rtol=1e-5, atol=1e-5)
    assert torch.equal(ours.is_top1[keep], theirs.is_top1[keep])
    assert (ours.log_probs[~keep] == 0).all()
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-4, atol=1e-6)


def test_large_logits_fall_back_to_trls_kernel(patched, monkeypatch):
    monkeypatch.setattr(compat, "LM_HEAD_NATIVE_MAX_LOGITS", 100)
    monkeypatch.setattr(compat, "lm_head_log_probs", lambda *a: pytest.fail("the native head ran over the memory bound"))
    hidden, weight, targets = torch.randn(8, 16), torch.randn(300, 16), torch.randint(0, 300, (8,))
    got = patched.apply(hidden, weight, None, targets, 1.0, 128, None, 1.0, ())
    torch.testing.assert_close(got[0], ChunkedLogProbFunction.apply(hidden, weight, None, targets, 1.0, 128)[0])


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", utils._ChunkedLogProbFunction)
    monkeypatch.setenv("RLFT_CPU_LM_HEAD", "0")
    if getattr(utils._ChunkedLogProbFunction, "rlft", False):
        monkeypatch.setattr(utils, "_ChunkedLogProbFunction", ChunkedLogProbFunction)
    assert not compat.install_cpu_lm_head()
    assert utils._ChunkedLogProbFunction is ChunkedLogProbFunction
