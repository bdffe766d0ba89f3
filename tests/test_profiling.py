"""The peak-memory count of the profiler, on calls whose allocations are known."""

import torch

from kdcourse.profiling import peak_tensor_bytes


def test_the_peak_counts_what_is_held_at_once_and_the_retained_what_is_left():
    kept = []

    def two_temporaries_then_one_kept():
        a = torch.ones(1000, 1000)        # 4 MB
        b = torch.ones(1000, 1000)        # 4 MB more, both alive
        del a, b
        kept.append(torch.ones(500, 1000))  # 2 MB, left allocated

    peak, retained = peak_tensor_bytes(two_temporaries_then_one_kept)
    assert 8_000_000 <= peak < 9_000_000
    assert 2_000_000 <= retained < 2_100_000


def test_the_fused_token_loss_holds_far_less_than_the_naive_one():
    from kdcourse import fused_linear_distillation_loss, token_distillation_loss

    hidden_s, weight_s = torch.randn(512, 16, requires_grad=True), torch.randn(4000, 16, requires_grad=True)
    hidden_t, weight_t = torch.randn(512, 16), torch.randn(4000, 16)

    def naive():
        logits = hidden_s @ weight_s.T
        token_distillation_loss(logits[None], (hidden_t @ weight_t.T)[None]).backward()

    def fused():
        fused_linear_distillation_loss(hidden_s, weight_s, hidden_t, weight_t, chunk_size=32).backward()

    naive_peak, _ = peak_tensor_bytes(naive)
    fused_peak, _ = peak_tensor_bytes(fused)
    logits_bytes = 512 * 4000 * 4
    assert naive_peak > 3 * logits_bytes  # logits, their softmaxes and the saved tensors of autograd
    assert fused_peak < 0.5 * logits_bytes and fused_peak < naive_peak / 4  # a few chunks of 32 x 4000
