"""The distillation loss and the combined objective (torch)."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcourse import combined_loss, distillation_loss, kl_divergence, softmax
from kdcourse.losses import (
    DIRECTIONS,
    combined_loss_from_log_probs,
    kl_from_log_probs,
    per_example_distillation_loss,
)


def random_logits(batch, classes, seed, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, classes, generator=generator, dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16), st.integers(2, 12), st.floats(0.5, 20.0), st.integers(0, 10_000))
def test_forward_matches_kl_div_batchmean_times_t_squared(batch, classes, temperature, seed):
    z, v = random_logits(batch, classes, seed), random_logits(batch, classes, seed + 1)
    expected = F.kl_div(F.log_softmax(z / temperature, -1), F.softmax(v / temperature, -1),
                        reduction="batchmean") * temperature**2
    torch.testing.assert_close(distillation_loss(z, v, temperature), expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16), st.integers(2, 12), st.floats(0.5, 20.0), st.integers(0, 10_000))
def test_forward_gradient_is_t_times_difference_over_batch(batch, classes, temperature, seed):
    z = random_logits(batch, classes, seed).requires_grad_(True)
    v = random_logits(batch, classes, seed + 1)
    distillation_loss(z, v, temperature).backward()
    p_s = torch.softmax(z.detach() / temperature, -1)
    p_t = torch.softmax(v / temperature, -1)
    torch.testing.assert_close(z.grad, temperature * (p_s - p_t) / batch)


def test_reverse_is_kl_student_teacher():
    z, v = random_logits(4, 5, 0), random_logits(4, 5, 1)
    t = 2.0
    expected = kl_divergence(softmax(z, t), softmax(v, t)).mean() * t**2
    torch.testing.assert_close(distillation_loss(z, v, t, direction="reverse"), expected)
    forward = distillation_loss(z, v, t)
    assert not torch.isclose(forward, distillation_loss(z, v, t, direction="reverse"))


def test_reductions():
    z, v = random_logits(6, 4, 2), random_logits(6, 4, 3)
    per_example = distillation_loss(z, v, 3.0, reduction="none")
    assert per_example.shape == (6,)
    torch.testing.assert_close(distillation_loss(z, v, 3.0, reduction="sum"), per_example.sum())
    torch.testing.assert_close(distillation_loss(z, v, 3.0), per_example.mean())


def test_teacher_gets_no_gradient():
    z = random_logits(3, 4, 0).requires_grad_(True)
    v = random_logits(3, 4, 1).requires_grad_(True)
    distillation_loss(z, v, 2.0).backward()
    assert v.grad is None
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_extreme_logits_stay_finite():
    z = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    v = torch.tensor([[-1000.0, 1000.0, 0.0]])
    loss = distillation_loss(z, v, 1.0)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2000.0, rel=1e-6)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    same = distillation_loss(torch.tensor([[1e4, -1e4]]), torch.tensor([[1e4, -1e4]]))
    assert same.item() == 0.0


def test_naive_formula_gives_nan_where_ours_does_not():
    v = torch.tensor([[200.0, -200.0, 0.0]])
    z = torch.tensor([[1.0, 0.0, -1.0]])
    p = torch.softmax(v, -1)
    naive = (p * (p.log() - torch.log_softmax(z, -1))).sum()
    assert torch.isnan(naive)
    assert torch.isfinite(distillation_loss(z, v))


def test_gradient_norm_scales_like_one_over_t_squared_without_factor():
    # COURSE.md: 10 zero-mean classes; norms fall roughly like 1/T² without the T² factor.
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(1, 10, generator=generator)
    v -= v.mean()
    z0 = torch.randn(1, 10, generator=generator)
    z0 -= z0.mean()
    norms = {}
    for t in (1.0, 2.0, 5.0, 10.0):
        z = z0.clone().requires_grad_(True)
        (distillation_loss(z, v, t) / t**2).backward()
        norms[t] = z.grad.norm().item()
    assert norms[1.0] > norms[2.0] > norms[5.0] > norms[10.0]
    assert norms[10.0] * 100 == pytest.approx(norms[1.0], rel=0.6)


def test_high_temperature_approaches_logit_matching():
    v = torch.tensor([[1.0, -0.5, -0.5]])
    z = torch.tensor([[0.2, 0.3, -0.5]], requires_grad=True)
    distillation_loss(z, v, 1000.0).backward()
    torch.testing.assert_close(z.grad, (z.detach() - v) / 3, atol=1e-4, rtol=1e-3)


def test_combined_loss_convention_alpha_weights_cross_entropy():
    z, v = random_logits(5, 3, 0), random_logits(5, 3, 1)
    y = torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(combined_loss(z, v, y, alpha=1.0, temperature=4.0), F.cross_entropy(z, y))
    torch.testing.assert_close(combined_loss(z, v, y, alpha=0.0, temperature=4.0), distillation_loss(z, v, 4.0))
    mixed = combined_loss(z, v, y, alpha=0.3, temperature=2.0)
    torch.testing.assert_close(mixed, 0.3 * F.cross_entropy(z, y) + 0.7 * distillation_loss(z, v, 2.0))


def test_no_warnings_from_losses():
    z, v = random_logits(5, 3, 0), random_logits(5, 3, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distillation_loss(z, v, 2.0)
        combined_loss(z, v, torch.tensor([0, 1, 2, 1, 0]), 0.5, 2.0)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(temperature=0.0), r"temperature must be > 0 \(got 0.0\)"),
        (dict(temperature=-2), r"temperature must be > 0 \(got -2.0\)"),
        (dict(temperature=math.nan), r"temperature must be finite \(got nan\)"),
        (dict(direction="backward"), r"direction must be one of 'forward', 'reverse'"),
        (dict(reduction="mean"), r"reduction must be one of 'batchmean', 'sum', 'none'"),
    ],
)
def test_bad_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        distillation_loss(random_logits(2, 3, 0), random_logits(2, 3, 1), **kwargs)


@pytest.mark.parametrize("temperature", ["hot", None, True])
def test_temperature_of_the_wrong_type_is_a_type_error(temperature):
    with pytest.raises(TypeError, match=r"^temperature must be a float \(a real number\), not "):
        distillation_loss(random_logits(2, 3, 0), random_logits(2, 3, 1), temperature=temperature)


def test_temperature_may_be_a_one_element_tensor():
    z, v = random_logits(3, 4, 0), random_logits(3, 4, 1)
    torch.testing.assert_close(distillation_loss(z, v, torch.tensor(2.0)), distillation_loss(z, v, 2.0))


def test_kl_from_log_probs_rejects_an_unknown_direction():
    log_p = torch.log_softmax(random_logits(2, 3, 0), -1)
    with pytest.raises(ValueError, match=r"direction must be one of 'forward', 'reverse' \(got 'sideways'\)"):
        kl_from_log_probs(log_p, log_p, "sideways")  # used to compute the reverse KL silently


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(2, 8), st.floats(0.5, 10.0), st.sampled_from(DIRECTIONS), st.integers(0, 10_000))
def test_the_kernel_is_the_per_example_loss(batch, classes, temperature, direction, seed):
    z, v = random_logits(batch, classes, seed), random_logits(batch, classes, seed + 1)
    log_p_teacher = torch.log_softmax(v / temperature, -1)
    torch.testing.assert_close(
        per_example_distillation_loss(z, log_p_teacher, temperature, direction),
        distillation_loss(z, v, temperature, direction=direction, reduction="none"))
    expected = (kl_divergence(softmax(v, temperature), softmax(z, temperature)) if direction == "forward"
                else kl_divergence(softmax(z, temperature), softmax(v, temperature))) * temperature**2
    torch.testing.assert_close(distillation_loss(z, v, temperature, direction=direction, reduction="none"), expected)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_combined_kernel_matches_combined_loss(alpha):
    z, v = random_logits(5, 3, 0), random_logits(5, 3, 1)
    y = torch.tensor([0, 1, 2, 1, 0])
    kernel = combined_loss_from_log_probs(z, y, torch.log_softmax(v / 3.0, -1), alpha, 3.0)
    torch.testing.assert_close(kernel, combined_loss(z, v, y, alpha=alpha, temperature=3.0))
    torch.testing.assert_close(kernel, alpha * F.cross_entropy(z, y) + (1 - alpha) * distillation_loss(z, v, 3.0))


def test_bad_logits():
    good = random_logits(2, 3, 0)
    with pytest.raises(ValueError, match=r"same shape \(got \(2, 3\) and \(2, 4\)\)"):
        distillation_loss(good, random_logits(2, 4, 1))
    with pytest.raises(ValueError, match=r"student_logits must have shape \(batch, classes\)"):
        distillation_loss(good[0], good[0])
    with pytest.raises(ValueError, match="teacher_logits contains NaN"):
        distillation_loss(good, torch.full((2, 3), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="student_logits must be a torch tensor"):
        distillation_loss(good.tolist(), good)


def test_bad_combined_arguments():
    z, v = random_logits(2, 3, 0), random_logits(2, 3, 1)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\] \(got 1.5\)"):
        combined_loss(z, v, torch.tensor([0, 1]), alpha=1.5, temperature=2.0)
    with pytest.raises(TypeError, match=r"alpha must be a float \(a real number\), not str"):
        combined_loss(z, v, torch.tensor([0, 1]), alpha="0.5", temperature=2.0)
    with pytest.raises(ValueError, match="targets must be a torch tensor of integer class indices"):
        combined_loss(z, v, torch.tensor([0.0, 1.0]), alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 2\] \(got values in \[0, 3\]\)"):
        combined_loss(z, v, torch.tensor([0, 3]), alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        combined_loss(z, v, torch.tensor([0, 1, 1]), alpha=0.5, temperature=2.0)


@pytest.mark.parametrize("targets", [[0, 3], [-1, 0]])
def test_targets_are_range_checked_even_without_the_finiteness_check(targets):
    # With check_finite=False a bad target used to reach F.cross_entropy and raise an IndexError.
    z, v = random_logits(2, 3, 0), random_logits(2, 3, 1)
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 2\]"):
        combined_loss(z, v, torch.tensor(targets), alpha=0.5, temperature=2.0, check_finite=False)
