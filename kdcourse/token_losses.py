r"""Token-level distillation losses for language models (torch).

A causal language model predicts, at every position :math:`i` of a sequence, a distribution over the
vocabulary for the next token. Token-level distillation applies the classifier loss of
:mod:`kdcourse.losses` at every position that counts and averages:

.. math::
    L = \frac{T^2}{\sum_{b,i} m_{b,i}} \sum_{b,i} m_{b,i}\, D\big(p_{t,b,i}^T,\ p_{s,b,i}^T\big),
    \qquad p^T = \mathrm{softmax}(\text{logits} / T)

where :math:`m_{b,i} \in \{0, 1\}` masks padding (and whatever else should not count) and :math:`D` is
one of

* ``"forward"``: :math:`\mathrm{KL}(p_t \,\|\, p_s)`, the usual distillation loss (mass-covering);
* ``"reverse"``: :math:`\mathrm{KL}(p_s \,\|\, p_t)` (mode-seeking; Gu et al. 2024, MiniLLM);
* ``"jsd"``: the generalised Jensen–Shannon divergence of Agarwal et al. 2024 (GKD),

  .. math:: \mathrm{JSD}(\beta) = \beta\,\mathrm{KL}(p_t \,\|\, m) + (1-\beta)\,\mathrm{KL}(p_s \,\|\, m),
            \qquad m = \beta\,p_t + (1-\beta)\,p_s .

  Its value vanishes at both ends of :math:`[0, 1]` (then :math:`m` is one of the two distributions and
  the other term has weight 0). Near :math:`\beta = 0` it behaves like :math:`\beta\,\mathrm{KL}(p_t\|p_s)`,
  near :math:`\beta = 1` like :math:`(1-\beta)\,\mathrm{KL}(p_s\|p_t)`; so, as TRL does, ``beta=0`` is
  *defined* here as the forward KL and ``beta=1`` as the reverse KL.

:func:`fused_linear_distillation_loss` computes the same token-mean loss from the models' last hidden
states and output matrices, a chunk of tokens at a time, so that the (tokens × vocab) logits never exist
all at once (the idea behind Liger-Kernel's fused linear JSD and TRL's chunked distillation loss).

Everything is computed from log-probabilities, so a probability that underflows to 0 contributes 0, not
NaN. The teacher never receives a gradient.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from kdcourse._validation import check_choice, check_scalar
from kdcourse.losses import kl_from_log_probs

if TYPE_CHECKING:
    import torch

__all__ = [
    "TOKEN_DIRECTIONS",
    "TOKEN_REDUCTIONS",
    "per_token_divergence",
    "token_distillation_loss",
    "fused_linear_distillation_loss",
]

#: ``"forward"`` KL(p_t ‖ p_s), ``"reverse"`` KL(p_s ‖ p_t), ``"jsd"`` the generalised JSD(β).
TOKEN_DIRECTIONS = ("forward", "reverse", "jsd")
#: How the per-token losses are combined.
TOKEN_REDUCTIONS = ("token_mean", "sequence_mean", "sum", "none")


def _effective_direction(direction: str, beta: float) -> str:
    """``direction``, with ``"jsd"`` at ``beta`` 0 or 1 read as the forward or the reverse KL (TRL's convention)."""
    check_choice(direction, TOKEN_DIRECTIONS, "direction")
    if direction == "jsd" and beta in (0.0, 1.0):
        return "forward" if beta == 0.0 else "reverse"
    return direction


def _log_mixture(log_p_student: torch.Tensor, log_p_teacher: torch.Tensor, beta: float) -> torch.Tensor:
    r""":math:`\log m = \log(\beta p_t + (1-\beta) p_s)`, as a log-sum-exp (finite where both are tiny)."""
    import math

    import torch

    return torch.logaddexp(log_p_teacher + math.log(beta), log_p_student + math.log1p(-beta))


def per_token_divergence(
    log_p_student: torch.Tensor, log_p_teacher: torch.Tensor, direction: str = "forward", beta: float = 0.5
) -> torch.Tensor:
    r"""The divergence :math:`D(p_t, p_s)` at every position, summed over the vocabulary (no :math:`T^2`).

    .. math::
        \text{forward: } \mathrm{KL}(p_t\|p_s), \quad \text{reverse: } \mathrm{KL}(p_s\|p_t), \quad
        \text{jsd: } \beta\,\mathrm{KL}(p_t\|m) + (1-\beta)\,\mathrm{KL}(p_s\|m),\ m = \beta p_t + (1-\beta) p_s

    with ``jsd`` at ``beta=0`` the forward and at ``beta=1`` the reverse KL (see the module docstring).
    :math:`\log m` is computed as a log-sum-exp of :math:`\log\beta + \log p_t` and
    :math:`\log(1-\beta) + \log p_s`, so it stays finite where both probabilities are tiny.

    Parameters
    ----------
    log_p_student, log_p_teacher : torch.Tensor
        Log-probabilities of the same shape ``(..., vocab)``. Not checked: this is the inner step.
    direction : {"forward", "reverse", "jsd"}, default="forward"
    beta : float, default=0.5
        The interpolation weight of ``"jsd"``, in [0, 1]; ignored by the other directions.

    Returns
    -------
    torch.Tensor
        Shape ``(...)``, in nats.
    """


    direction = _effective_direction(direction, beta)
    if direction != "jsd":
        return kl_from_log_probs(log_p_student, log_p_teacher, direction)
    log_m = _log_mixture(log_p_student, log_p_teacher, beta)
    teacher_to_mixture = kl_from_log_probs(log_m, log_p_teacher, "forward")  # KL(p_t ‖ m)
    student_to_mixture = kl_from_log_probs(log_m, log_p_student, "forward")  # KL(p_s ‖ m)
    return beta * teacher_to_mixture + (1.0 - beta) * student_to_mixture


def _divergence_gradient(
    log_p_student: torch.Tensor, log_p_teacher: torch.Tensor, direction: str, beta: float
) -> torch.Tensor:
    r""":math:`\partial D / \partial u`, the gradient of :func:`per_token_divergence` with respect to the
    student's tempered logits :math:`u = z / T` (``log_p_student = log_softmax(u)``).

    .. math::
        \text{forward: } p_s - p_t, \qquad
        \text{otherwise: } p_s \odot \big(g - \langle p_s, g \rangle\big), \quad
        g = \begin{cases} \log p_s - \log p_t & \text{reverse} \\
                          (1-\beta)(\log p_s - \log m) & \text{jsd} \end{cases}

    (:math:`g` is :math:`\partial D / \partial p_s` up to a constant, which the softmax's Jacobian removes.)
    """


    direction = _effective_direction(direction, beta)
    p_student = log_p_student.exp()
    if direction == "forward":
        return p_student - log_p_teacher.exp()
    if direction == "reverse":
        g = log_p_student - log_p_teacher
    else:
        g = (1.0 - beta) * (log_p_student - _log_mixture(log_p_student, log_p_teacher, beta))
    return p_student * (g - (p_student * g).sum(dim=-1, keepdim=True))


# ---------------------------------------------------------------------------------------------- checks

def _check_tensor(value, name: str, ndims: tuple[int, ...], shape_words: str) -> None:
    import torch

    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor (got {type(value).__name__})")
    if value.ndim not in ndims:
        raise ValueError(f"{name} must have shape {shape_words} (got shape {tuple(value.shape)})")
    if not torch.is_floating_point(value):
        raise ValueError(f"{name} must be floating point (got dtype {value.dtype})")


def _check_finite(value: torch.Tensor, name: str) -> None:
    import torch

    if value.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(value.detach()))).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def _token_mask(mask, token_shape: tuple[int, ...], device) -> torch.Tensor:
    """``mask`` as a float tensor of ``token_shape`` with values 0/1 (all ones when ``None``), checked."""
    import torch

    if mask is None:
        return torch.ones(token_shape, device=device)
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch tensor (got {type(mask).__name__})")
    if tuple(mask.shape) != tuple(token_shape):
        raise ValueError(f"mask must have shape {tuple(token_shape)}, one entry per token "
                         f"(got shape {tuple(mask.shape)})")
    if mask.dtype != torch.bool:
        if torch.is_complex(mask) or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0/1 or False/True (1 marks a token that counts)")
    mask = mask.to(device=device, dtype=torch.float32)
    if not bool(mask.any()):
        raise ValueError("mask selects no token: at least one entry must be 1/True")
    return mask


def _check_options(temperature, direction: str, beta, reduction: str | None = None) -> tuple[float, float]:
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    check_choice(direction, TOKEN_DIRECTIONS, "direction")
    beta = check_scalar(beta, "beta", float, min_val=0, max_val=1)
    if reduction is not None:
        check_choice(reduction, TOKEN_REDUCTIONS, "reduction")
    return temperature, beta


# ------------------------------------------------------------------------------------------ the losses

def token_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    direction: str = "forward",
    beta: float = 0.5,
    reduction: str = "token_mean",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Token-level distillation loss: :math:`T^2\,D(p_t^T \| p_s^T)` at every unmasked position, reduced.

    .. math::
        \ell_{b,i} = T^2\, D\big(\mathrm{softmax}(v_{b,i}/T),\ \mathrm{softmax}(z_{b,i}/T)\big), \qquad
        \text{token\_mean: } \frac{\sum_{b,i} m_{b,i}\,\ell_{b,i}}{\sum_{b,i} m_{b,i}}

    with :math:`D` the forward KL, the reverse KL or the generalised JSD(β) (``beta=0`` is the forward
    and ``beta=1`` the reverse KL, as in TRL; see :mod:`kdcourse.token_losses`). The logits of position
    :math:`i` predict token :math:`i+1`: teacher and student logits of the same position are compared,
    and ``mask`` says which positions count (0 on padding, and on the last position of a sequence if
    its next token is padding).

    Parameters
    ----------
    student_logits, teacher_logits : torch.Tensor
        ``(batch, seq, vocab)`` raw scores of the student :math:`z` and the teacher :math:`v`. The teacher's
        are detached: it gets no gradient.
    mask : torch.Tensor, optional
        ``(batch, seq)``, bool or 0/1 numbers; 1/True marks a token that counts. ``None``: every token.
    temperature : float, default=1.0
        :math:`T > 0`, applied to both sides; the loss is scaled by :math:`T^2`.
    direction : {"forward", "reverse", "jsd"}, default="forward"
    beta : float, default=0.5
        JSD(β) weight in [0, 1]; only used by ``"jsd"``.
    reduction : {"token_mean", "sequence_mean", "sum", "none"}, default="token_mean"
        ``"token_mean"``: mean over unmasked tokens (every token weighs the same). ``"sequence_mean"``:
        sum over each sequence's unmasked tokens, then mean over the sequences that have at least one
        (grows with sequence length). ``"sum"``: sum over unmasked tokens. ``"none"``: ``(batch, seq)``
        per-token losses, 0 where masked.
    check_finite : bool, default=True
        Raise on NaN/inf logits (costs a host sync; training loops may turn it off).

    Returns
    -------
    torch.Tensor
        A scalar in nats, or ``(batch, seq)`` for ``reduction="none"``.

    Raises
    ------
    TypeError
        If ``temperature`` or ``beta`` is not a real number.
    ValueError
        Logits not 3-D floating-point tensors of the same shape; ``mask`` of the wrong shape, with values
        other than 0/1, or selecting no token; ``temperature`` not > 0; ``beta`` outside [0, 1]; unknown
        ``direction`` or ``reduction``; (with ``check_finite``) NaN/inf logits.

    Examples
    --------
    >>> import torch
    >>> z = torch.zeros(1, 2, 3); v = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    >>> loss = token_distillation_loss(z, v, mask=torch.tensor([[1, 0]]))
    >>> round(float(loss), 4)  # KL(softmax([1,0,0]) ‖ uniform) at the first token only
    0.1233
    """
    import torch.nn.functional as F

    for name, value in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        _check_tensor(value, name, (3,), "(batch, seq, vocab)")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError("student_logits and teacher_logits must have the same shape "
                         f"(got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)})")
    temperature, beta = _check_options(temperature, direction, beta, reduction)
    weights = _token_mask(mask, tuple(student_logits.shape[:2]), student_logits.device)
    if check_finite:
        _check_finite(student_logits, "student_logits")
        _check_finite(teacher_logits, "teacher_logits")

    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    per_token = per_token_divergence(log_p_student, log_p_teacher, direction, beta) * temperature**2
    per_token = per_token * weights.to(per_token.dtype)
    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    if reduction == "token_mean":
        return per_token.sum() / weights.sum()
    has_token = weights.sum(dim=1) > 0
    return per_token.sum(dim=1)[has_token].mean()


def _fused_forward_and_gradients(student_hidden, student_weight, teacher_hidden, teacher_weight, weights,
                                 temperature: float, direction: str, beta: float, chunk_size: int):
    """The token-mean loss and its gradients for the student's hidden states and weight, chunk by chunk.

    For a chunk of tokens with student logits :math:`z = h W^\\top` the loss's gradient is
    :math:`\\partial L/\\partial z = (m / n)\\, T\\, \\partial D/\\partial u` (:math:`u = z/T`,
    :math:`n = \\sum m`), so :math:`\\partial L/\\partial h = (\\partial L/\\partial z) W` and
    :math:`\\partial L/\\partial W \\mathrel{+}= (\\partial L/\\partial z)^\\top h`. Only one chunk's
    (chunk_size × vocab) logits exist at a time. Arithmetic is in float32 (or float64 for float64 inputs).
    """
    import torch
    import torch.nn.functional as F

    compute = torch.float64 if student_hidden.dtype == torch.float64 else torch.float32
    n_tokens = weights.sum()
    loss = torch.zeros((), dtype=compute, device=student_hidden.device)
    grad_hidden = torch.empty(student_hidden.shape, dtype=compute, device=student_hidden.device)
    grad_weight = torch.zeros(student_weight.shape, dtype=compute, device=student_weight.device)
    weight_s = student_weight.to(compute)
    weight_t = teacher_weight.to(compute)
    for start in range(0, student_hidden.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        hidden_s = student_hidden[rows].to(compute)
        log_p_student = F.log_softmax((hidden_s @ weight_s.T).div_(temperature), dim=-1)
        log_p_teacher = F.log_softmax((teacher_hidden[rows].to(compute) @ weight_t.T).div_(temperature), dim=-1)
        token_weights = (weights[rows].to(compute) / n_tokens).unsqueeze(-1)
        divergence = per_token_divergence(log_p_student, log_p_teacher, direction, beta)
        loss += (divergence * token_weights.squeeze(-1)).sum() * temperature**2
        grad_logits = _divergence_gradient(log_p_student, log_p_teacher, direction, beta)
        del log_p_student, log_p_teacher, divergence
        grad_logits.mul_(token_weights * temperature)
        grad_hidden[rows] = grad_logits @ weight_s
        grad_weight.addmm_(grad_logits.T, hidden_s)
        del grad_logits
    return loss, grad_hidden, grad_weight


@functools.cache
def _fused_function():
    """The autograd Function of the fused loss, defined on first use so that importing this module stays cheap."""
    import torch

    class FusedLinearDistillation(torch.autograd.Function):
        """Gradients are computed in the forward pass, chunk by chunk, and scaled in backward."""

        @staticmethod
        def forward(ctx, student_hidden, student_weight, teacher_hidden, teacher_weight, weights,
                    temperature, direction, beta, chunk_size):
            loss, grad_hidden, grad_weight = _fused_forward_and_gradients(
                student_hidden.detach(), student_weight.detach(), teacher_hidden.detach(),
                teacher_weight.detach(), weights, temperature, direction, beta, chunk_size)
            ctx.save_for_backward(grad_hidden.to(student_hidden.dtype), grad_weight.to(student_weight.dtype))
            return loss.to(student_hidden.dtype)

        @staticmethod
        def backward(ctx, grad_output):
            grad_hidden, grad_weight = ctx.saved_tensors
            hidden = grad_hidden * grad_output if ctx.needs_input_grad[0] else None
            weight = grad_weight * grad_output if ctx.needs_input_grad[1] else None
            return hidden, weight, None, None, None, None, None, None, None

    return FusedLinearDistillation


def fused_linear_distillation_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    direction: str = "forward",
    beta: float = 0.5,
    chunk_size: int = 1024,
    check_finite: bool = True,
) -> torch.Tensor:
    r""":func:`token_distillation_loss` (``reduction="token_mean"``) from hidden states, in chunks of tokens.

    .. math::
        L = \frac{T^2}{\sum_i m_i} \sum_i m_i\, D\big(\mathrm{softmax}(W_t h_{t,i} / T),\
            \mathrm{softmax}(W_s h_{s,i} / T)\big)

    Equal in value and in gradients to
    ``token_distillation_loss(student_hidden @ student_weight.T, teacher_hidden @ teacher_weight.T, ...)``,
    but no more than ``chunk_size × vocab`` logits exist at once: for each chunk the logits are formed,
    the loss and its gradient with respect to those logits are computed in closed form, and the gradients
    for ``student_hidden`` and ``student_weight`` are accumulated; the logits are then freed. At LLM
    scale (e.g. 16,384 tokens × 151,936 vocabulary) the full logits alone take several GB per model.
    The teacher's hidden states and weight get no gradient.

    Parameters
    ----------
    student_hidden : torch.Tensor
        ``(tokens, d_s)`` or ``(batch, seq, d_s)`` the student's last hidden states.
    student_weight : torch.Tensor
        ``(vocab, d_s)`` the student's output (unembedding) matrix.
    teacher_hidden : torch.Tensor
        ``(tokens, d_t)`` or ``(batch, seq, d_t)``, the same tokens as ``student_hidden``.
    teacher_weight : torch.Tensor
        ``(vocab, d_t)``.
    mask : torch.Tensor, optional
        ``(tokens,)`` or ``(batch, seq)``, as the hidden states; 1/True marks a token that counts.
    temperature, direction, beta :
        As in :func:`token_distillation_loss`.
    chunk_size : int, default=1024
        Tokens per chunk, ≥ 1.
    check_finite : bool, default=True
        Raise on NaN/inf hidden states or weights.

    Returns
    -------
    torch.Tensor
        The token-mean loss (a scalar, nats), whose backward pass scales the stored gradients.

    Raises
    ------
    TypeError
        If ``temperature``, ``beta`` or ``chunk_size`` has the wrong type.
    ValueError
        Wrong shapes (hidden states of different token shapes, a weight whose width differs from its
        hidden states', vocabularies that differ), a bad ``mask``, ``chunk_size`` < 1, and everything
        :func:`token_distillation_loss` rejects.
    """
    _check_tensor(student_hidden, "student_hidden", (2, 3), "(tokens, d) or (batch, seq, d)")
    _check_tensor(teacher_hidden, "teacher_hidden", (2, 3), "(tokens, d) or (batch, seq, d)")
    _check_tensor(student_weight, "student_weight", (2,), "(vocab, d)")
    _check_tensor(teacher_weight, "teacher_weight", (2,), "(vocab, d)")
    token_shape = tuple(student_hidden.shape[:-1])
    if tuple(teacher_hidden.shape[:-1]) != token_shape:
        raise ValueError("student_hidden and teacher_hidden must cover the same tokens "
                         f"(got shapes {tuple(student_hidden.shape)} and {tuple(teacher_hidden.shape)})")
    for hidden_name, hidden, weight_name, weight in (
            ("student_hidden", student_hidden, "student_weight", student_weight),
            ("teacher_hidden", teacher_hidden, "teacher_weight", teacher_weight)):
        if weight.shape[1] != hidden.shape[-1]:
            raise ValueError(f"{weight_name} must have shape (vocab, {hidden.shape[-1]}) to match "
                             f"{hidden_name}'s width (got {tuple(weight.shape)})")
    if student_weight.shape[0] != teacher_weight.shape[0]:
        raise ValueError("student_weight and teacher_weight must have the same vocabulary size "
                         f"(got {student_weight.shape[0]} and {teacher_weight.shape[0]})")
    temperature, beta = _check_options(temperature, direction, beta)
    chunk_size = check_scalar(chunk_size, "chunk_size", int, min_val=1)
    weights = _token_mask(mask, token_shape, student_hidden.device).reshape(-1)
    if check_finite:
        for name, value in (("student_hidden", student_hidden), ("student_weight", student_weight),
                            ("teacher_hidden", teacher_hidden), ("teacher_weight", teacher_weight)):
            _check_finite(value, name)
    flat_student = student_hidden.reshape(-1, student_hidden.shape[-1])
    flat_teacher = teacher_hidden.reshape(-1, teacher_hidden.shape[-1])
    return _fused_function().apply(flat_student, student_weight, flat_teacher, teacher_weight, weights,
                                   temperature, direction, beta, chunk_size)
