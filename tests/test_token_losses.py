"""Token-level distillation losses: against a naive per-token reference, gradients, the fused loss, bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcourse import distillation_loss, fused_linear_distillation_loss, token_distillation_loss
from kdcourse.token_losses import TOKEN_REDUCTIONS, per_token_divergence

CASES = [("forward", 0.5), ("reverse", 0.5), ("jsd", 0.0), ("jsd", 0.5), ("jsd", 1.0), ("jsd", 0.2)]


def random_logits(shape, seed, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


def padding_mask(batch, seq, seed):
    """Right padding: sequence b has between 1 and seq real tokens."""
    lengths = np.random.default_rng(seed).integers(1, seq + 1, size=batch)
    return torch.tensor([[1 if i < n else 0 for i in range(seq)] for n in lengths])


def naive_softmax(row, temperature):
    exps = [math.exp((x - max(row)) / temperature) for x in row]
    return [e / sum(exps) for e in exps]


def naive_kl(p, q):
    return sum(pk * math.log(pk / qk) for pk, qk in zip(p, q) if pk > 0)


def naive_divergence(p_t, p_s, direction, beta):
    """D at one token, written from the definitions (jsd: beta 0 and 1 are the forward and reverse KL)."""
    if direction == "forward" or (direction == "jsd" and beta == 0):
        return naive_kl(p_t, p_s)
    if direction == "reverse" or (direction == "jsd" and beta == 1):
        return naive_kl(p_s, p_t)
    m = [beta * a + (1 - beta) * b for a, b in zip(p_t, p_s)]
    return beta * naive_kl(p_t, m) + (1 - beta) * naive_kl(p_s, m)


def naive_loss(z, v, mask, temperature, direction, beta, reduction):
    """Loops over every token: T² D per token, then the reduction, in plain Python."""
    batch, seq, _ = z.shape
    per_token = [[0.0] * seq for _ in range(batch)]
    for b in range(batch):
        for i in range(seq):
            if mask[b][i]:
                p_t = naive_softmax(v[b, i].tolist(), temperature)
                p_s = naive_softmax(z[b, i].tolist(), temperature)
                per_token[b][i] = temperature**2 * naive_divergence(p_t, p_s, direction, beta)
    if reduction == "none":
        return torch.tensor(per_token, dtype=torch.float64)
    total = sum(map(sum, per_token))
    if reduction == "sum":
        return total
    if reduction == "token_mean":
        return total / sum(map(sum, mask.tolist()))
    sequences = [sum(row) for row, m in zip(per_token, mask.tolist()) if sum(m) > 0]
    return sum(sequences) / len(sequences)


@pytest.mark.parametrize("direction,beta", CASES)
@pytest.mark.parametrize("reduction", TOKEN_REDUCTIONS)
def test_matches_a_naive_per_token_reference_with_padding(direction, beta, reduction):
    z, v = random_logits((3, 5, 6), 1), random_logits((3, 5, 6), 2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    got = token_distillation_loss(z, v, mask, temperature=2.0, direction=direction, beta=beta, reduction=reduction)
    expected = naive_loss(z, v, mask, 2.0, direction, beta, reduction)
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(2, 9), st.floats(0.5, 8.0),
       st.sampled_from(CASES), st.sampled_from(TOKEN_REDUCTIONS), st.integers(0, 10_000))
def test_matches_the_reference_for_any_shape_temperature_and_padding(batch, seq, vocab, temperature, case,
                                                                      reduction, seed):
    direction, beta = case
    z, v = random_logits((batch, seq, vocab), seed), random_logits((batch, seq, vocab), seed + 1)
    mask = padding_mask(batch, seq, seed)
    got = token_distillation_loss(z, v, mask, temperature, direction, beta, reduction)
    expected = naive_loss(z, v, mask, temperature, direction, beta, reduction)
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-11)


def test_beta_zero_and_one_are_the_forward_and_reverse_kl_and_the_jsd_vanishes_near_them():
    z, v = random_logits((2, 4, 5), 3), random_logits((2, 4, 5), 4)
    forward = token_distillation_loss(z, v, direction="forward")
    reverse = token_distillation_loss(z, v, direction="reverse")
    torch.testing.assert_close(token_distillation_loss(z, v, direction="jsd", beta=0.0), forward)
    torch.testing.assert_close(token_distillation_loss(z, v, direction="jsd", beta=1.0), reverse)
    # the JSD's own value behaves like β·KL(p_t‖p_s) near 0 and (1−β)·KL(p_s‖p_t) near 1
    small = 1e-6
    near_zero = token_distillation_loss(z, v, direction="jsd", beta=small)
    near_one = token_distillation_loss(z, v, direction="jsd", beta=1 - small)
    torch.testing.assert_close(near_zero / small, forward, rtol=1e-2, atol=0)
    torch.testing.assert_close(near_one / small, reverse, rtol=1e-2, atol=0)
    assert forward != reverse


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(2, 8), st.floats(0.5, 6.0), st.integers(0, 10_000))
def test_forward_gradient_is_t_times_the_probability_difference_over_the_token_count(batch, seq, vocab,
                                                                                     temperature, seed):
    z = random_logits((batch, seq, vocab), seed).requires_grad_(True)
    v = random_logits((batch, seq, vocab), seed + 1)
    mask = padding_mask(batch, seq, seed)
    token_distillation_loss(z, v, mask, temperature).backward()
    p_s, p_t = torch.softmax(z.detach() / temperature, -1), torch.softmax(v / temperature, -1)
    expected = temperature * (p_s - p_t) * mask.unsqueeze(-1) / mask.sum()
    torch.testing.assert_close(z.grad, expected)


def test_padded_positions_get_no_gradient_and_no_say():
    z = random_logits((2, 4, 5), 5).requires_grad_(True)
    v = random_logits((2, 4, 5), 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    loss = token_distillation_loss(z, v, mask, direction="jsd")
    loss.backward()
    assert z.grad[~mask].abs().max() == 0 and z.grad[mask].abs().max() > 0
    changed = z.detach().clone()
    changed[~mask] = 1000.0 * torch.randn_like(changed[~mask])  # garbage in the padding
    torch.testing.assert_close(token_distillation_loss(changed, v, mask, direction="jsd"), loss.detach())


def test_one_token_per_sequence_is_the_classifier_loss():
    z, v = random_logits((6, 1, 4), 7), random_logits((6, 1, 4), 8)
    for direction in ("forward", "reverse"):
        torch.testing.assert_close(token_distillation_loss(z, v, temperature=3.0, direction=direction),
                                   distillation_loss(z[:, 0], v[:, 0], 3.0, direction=direction))


def test_token_mean_does_not_grow_with_length_but_sequence_mean_does():
    v = random_logits((1, 1, 5), 9).repeat(1, 8, 1)
    z = random_logits((1, 1, 5), 10).repeat(1, 8, 1)
    short, long = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0]]), torch.ones(1, 8)
    assert torch.isclose(token_distillation_loss(z, v, short), token_distillation_loss(z, v, long))
    torch.testing.assert_close(token_distillation_loss(z, v, long, reduction="sequence_mean"),
                               4 * token_distillation_loss(z, v, short, reduction="sequence_mean"))


def test_the_teacher_gets_no_gradient():
    z = random_logits((2, 3, 4), 11).requires_grad_(True)
    v = random_logits((2, 3, 4), 12).requires_grad_(True)
    token_distillation_loss(z, v, direction="reverse").backward()
    assert v.grad is None and z.grad is not None


def test_an_underflowing_probability_gives_a_finite_loss_and_gradient():
    z = torch.tensor([[[0.0, 0.0, 0.0]]], requires_grad=True)
    v = torch.tensor([[[2000.0, 0.0, -2000.0]]])
    for direction, beta in CASES:
        loss = token_distillation_loss(z, v, direction=direction, beta=beta)
        (gradient,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(gradient).all(), (direction, beta)


def test_per_token_divergence_is_non_negative_and_zero_for_equal_distributions():
    log_p = torch.log_softmax(random_logits((4, 7), 13), -1)
    log_q = torch.log_softmax(random_logits((4, 7), 14), -1)
    for direction, beta in CASES:
        assert (per_token_divergence(log_p, log_q, direction, beta) > 0).all()
        torch.testing.assert_close(per_token_divergence(log_p, log_p, direction, beta), torch.zeros(4, dtype=log_p.dtype))


# --------------------------------------------------------------------------------------------- fused


def hidden_and_weights(tokens_shape, vocab, d_s, d_t, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    student_hidden = draw(*tokens_shape, d_s).requires_grad_(True)
    student_weight = draw(vocab, d_s).requires_grad_(True)
    teacher_hidden = (2 * draw(*tokens_shape, d_t)).requires_grad_(True)
    teacher_weight = draw(vocab, d_t).requires_grad_(True)
    return student_hidden, student_weight, teacher_hidden, teacher_weight


def unfused(student_hidden, student_weight, teacher_hidden, teacher_weight, mask, **options):
    student_logits = student_hidden @ student_weight.T
    teacher_logits = teacher_hidden @ teacher_weight.T
    if student_logits.ndim == 2:
        student_logits, teacher_logits = student_logits[None], teacher_logits[None]
        mask = None if mask is None else mask[None]
    return token_distillation_loss(student_logits, teacher_logits, mask, reduction="token_mean", **options)


@pytest.mark.parametrize("direction,beta", CASES)
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 64])  # 13 tokens: chunks that divide it and that do not
def test_fused_equals_unfused_in_value_and_gradients(direction, beta, chunk_size):
    tensors = hidden_and_weights((13,), vocab=11, d_s=4, d_t=6, seed=chunk_size)
    mask = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1])
    options = dict(temperature=1.7, direction=direction, beta=beta)
    expected = unfused(*tensors, mask, **options)
    expected_grads = torch.autograd.grad(expected, tensors[:2])
    got = fused_linear_distillation_loss(*tensors, mask, chunk_size=chunk_size, **options)
    got_grads = torch.autograd.grad(got, tensors[:2])
    torch.testing.assert_close(got, expected)
    for name, g, e in zip(("student_hidden", "student_weight"), got_grads, expected_grads):
        torch.testing.assert_close(g, e, msg=lambda m, name=name: f"{name}: {m}")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.integers(2, 12), st.integers(1, 9), st.floats(0.5, 5.0),
       st.sampled_from(CASES), st.integers(0, 10_000))
def test_fused_equals_unfused_for_batched_hidden_states(batch, seq, vocab, chunk_size, temperature, case, seed):
    direction, beta = case
    tensors = hidden_and_weights((batch, seq), vocab, d_s=3, d_t=5, seed=seed)
    mask = padding_mask(batch, seq, seed)
    options = dict(temperature=temperature, direction=direction, beta=beta)
    expected = unfused(*tensors, mask, **options)
    got = fused_linear_distillation_loss(*tensors, mask, chunk_size=chunk_size, **options)
    torch.testing.assert_close(got, expected)
    for g, e in zip(torch.autograd.grad(got, tensors[:2]), torch.autograd.grad(expected, tensors[:2])):
        torch.testing.assert_close(g, e)


def test_fused_gives_the_teacher_no_gradient_and_scales_with_the_upstream_gradient():
    tensors = hidden_and_weights((6,), vocab=5, d_s=3, d_t=3, seed=1)
    (3.0 * fused_linear_distillation_loss(*tensors, chunk_size=4)).backward()
    assert tensors[2].grad is None and tensors[3].grad is None
    fresh = [t.detach().requires_grad_(True) for t in tensors]
    expected = torch.autograd.grad(unfused(*fresh, None), fresh[:2])
    torch.testing.assert_close(tensors[0].grad, 3.0 * expected[0])
    torch.testing.assert_close(tensors[1].grad, 3.0 * expected[1])


def test_fused_in_float32_is_close_to_float64():
    tensors64 = hidden_and_weights((40,), vocab=50, d_s=8, d_t=8, seed=2)
    tensors32 = [t.detach().float() for t in tensors64]
    loss64 = fused_linear_distillation_loss(*tensors64, chunk_size=16)
    loss32 = fused_linear_distillation_loss(*tensors32, chunk_size=16)
    assert loss32.dtype == torch.float32
    assert math.isclose(float(loss32), float(loss64.detach()), rel_tol=1e-5)


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,message", [
    (dict(student_logits=torch.zeros(2, 3)), "shape (batch, seq, vocab)"),
    (dict(teacher_logits=torch.zeros(2, 4, 6)), "same shape"),
    (dict(student_logits=torch.zeros(2, 4, 5, dtype=torch.int64)), "floating point"),
    (dict(mask=torch.ones(2, 5)), "mask must have shape (2, 4)"),
    (dict(mask=torch.full((2, 4), 2)), "only 0/1"),
    (dict(mask=torch.full((2, 4), 0.5)), "only 0/1"),
    (dict(mask=torch.zeros(2, 4, dtype=torch.bool)), "selects no token"),
    (dict(mask=[[1, 1, 1, 1]] * 2), "mask must be a torch tensor"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(beta=1.5), "beta must be"),
    (dict(beta=-0.1), "beta must be"),
    (dict(direction="backward"), "direction must be one of"),
    (dict(reduction="mean"), "reduction must be one of"),
    (dict(student_logits=torch.full((2, 4, 5), float("nan"))), "student_logits contains NaN"),
])
def test_bad_input_is_named(kwargs, message):
    arguments = dict(student_logits=torch.zeros(2, 4, 5), teacher_logits=torch.zeros(2, 4, 5), mask=None)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        token_distillation_loss(**arguments)


def test_a_string_temperature_or_beta_is_a_type_error():
    z = torch.zeros(1, 2, 3)
    with pytest.raises(TypeError, match="temperature"):
        token_distillation_loss(z, z, temperature="2")
    with pytest.raises(TypeError, match="beta"):
        token_distillation_loss(z, z, direction="jsd", beta="0.5")


@pytest.mark.parametrize("change,message", [
    (lambda t: (t[0][:, :2], *t[1:]), "student_weight must have shape (vocab, 2)"),
    (lambda t: (t[0], t[1], t[2][:5], t[3]), "cover the same tokens"),
    (lambda t: (t[0], t[1][:4], t[2], t[3]), "same vocabulary size"),
    (lambda t: (t[0], t[1][None], t[2], t[3]), "student_weight must have shape (vocab, d)"),
])
def test_fused_bad_shapes_are_named(change, message):
    tensors = hidden_and_weights((6,), vocab=5, d_s=3, d_t=4, seed=0)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fused_linear_distillation_loss(*change(tensors))


def test_fused_bad_chunk_size_and_mask_are_named():
    tensors = hidden_and_weights((6,), vocab=5, d_s=3, d_t=4, seed=0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fused_linear_distillation_loss(*tensors, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        fused_linear_distillation_loss(*tensors, chunk_size=2.5)
    with pytest.raises(ValueError, match=r"mask must have shape \(6,\)"):
        fused_linear_distillation_loss(*tensors, mask=torch.ones(2, 3))
