r"""Judge of assignment a05 (distilling a language model).

Notation: student logits :math:`z` and teacher logits :math:`v` of shape ``(B, L, V)`` (batch, positions,
vocabulary), a 0/1 mask :math:`m` of shape ``(B, L)``, temperature :math:`T`, :math:`p^T = \mathrm{softmax}(\cdot/T)`
over the vocabulary (the last axis). The token-level distillation loss is

.. math:: L = \frac{T^2}{\sum_{b,i} m_{b,i}} \sum_{b,i} m_{b,i}\,\mathrm{KL}(p_{t,b,i}^T \,\|\, p_{s,b,i}^T);

the next-token loss of ``tokens`` (B, L) is the cross-entropy of ``logits[:, :-1]`` against ``tokens[:, 1:]``,
averaged over the positions whose *next* token is real (``mask[:, 1:]``); the generalised JSD(β) of Agarwal
et al. (2024) mixes :math:`m = \beta p_t + (1-\beta) p_s` and is :math:`\beta\,\mathrm{KL}(p_t\|m) + (1-\beta)\,
\mathrm{KL}(p_s\|m)` per token, with ``beta=0`` defined as KL(p_t‖p_s) and ``beta=1`` as KL(p_s‖p_t).

Expected values are computed here in float64; every wrong answer's message names the misconception it
matches: padding counted, a mean over the vocabulary, a sequence sum where the token mean was meant,
the softmax over the sequence axis, :math:`T^2` missing, the arguments swapped, the teacher not detached;
logits and targets not shifted (or shifted the wrong way), the mask of the wrong positions; the JSD's
mixture or term weights swapped and its end points left at 0.
"""

from __future__ import annotations

import numpy as np
import torch

from .a02_distillation_loss import compare, tensor_result
from .items import Answer, Context, Item, Results
from .matching import close, expected_clause, fmt
from .static import forbid_delegation
from .values import as_array, choice_item
from .verdict import Wrong

__all__ = ["ITEMS"]

RTOL, ATOL = 1e-5, 1e-8
#: kdcourse holds the course's own token losses; scipy and torch.distributions compute divergences.
BANNED_PACKAGES = ("scipy", "kdcourse", "sklearn", "torch.distributions")
BANNED_LOSS_NAMES = ("kl_div", "KLDivLoss", "rel_entr", "token_distillation_loss",
                     "fused_linear_distillation_loss", "distillation_loss")

# Visible inputs: a batch of 2 sequences of 4 positions over a vocabulary of 5; the first has 3 real tokens.
Z = [[[1.0, 2.0, 0.5, -1.0, 0.0], [0.0, -0.5, 3.0, 1.0, 0.5], [2.0, 2.0, -2.0, 0.0, 1.0], [0.5, 0.0, 0.0, 4.0, -1.0]],
     [[-1.0, 0.5, 0.0, 2.0, 1.0], [3.0, 0.0, -1.0, 0.0, 0.5], [0.0, 1.0, 1.0, -2.0, 2.5], [1.0, -1.0, 2.0, 0.0, 0.0]]]
V = [[[2.5, 0.0, 1.0, -2.0, 0.5], [-1.0, 0.5, 4.0, 0.0, 0.0], [0.0, 3.0, -1.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0, 1.0]],
     [[0.0, 1.0, -1.0, 3.0, 0.0], [2.0, 0.5, 0.0, -1.0, 1.0], [1.0, 0.0, 2.0, -1.0, 3.0], [0.0, 0.0, 3.0, 1.0, -2.0]]]
MASK = [[1, 1, 1, 0], [1, 1, 1, 1]]
TOKENS = [[2, 0, 3, 4], [1, 4, 0, 2]]
NEXT_MASK = [[1, 1, 0, 0], [1, 1, 1, 1]]


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ_k p_k (log p_k − log q_k) over the last axis, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (per_token * mask).sum() / mask.sum()


# --- token_kd_loss --------------------------------------------------------------------------------------


def token_kd_variants(z: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, T: float) -> tuple[torch.Tensor, list]:
    """The token-mean T²·KL(p_t^T‖p_s^T) and what known misconceptions give instead."""
    B, L, V = z.shape
    ls, lt = torch.log_softmax(z / T, -1), torch.log_softmax(v / T, -1)
    per_token = _kl(lt, ls)
    correct = T * T * _token_mean(per_token, mask)
    ls1, lt1 = torch.log_softmax(z / T, 1), torch.log_softmax(v / T, 1)
    return correct, [
        (T * T * per_token.mean(),
         "padding counted: you averaged over every position, padded ones included. Multiply each token's loss "
         "by the mask and divide by the number of real tokens, mask.sum()."),
        (correct / V, "mean over the vocabulary: you averaged the KL's terms over the V classes. Sum over the "
                      "vocabulary (that is the KL), then average over the real tokens."),
        (T * T * (per_token * mask).sum() / B,
         "this is a sequence sum (the sum over each sequence's tokens, averaged over sequences): it grows with "
         "the length. The token mean divides by the number of real tokens, mask.sum()."),
        (T * T * (per_token * mask).sum(), "you summed over the tokens; divide by the number of real tokens."),
        (T * T * _token_mean(_kl(lt1, ls1), mask),
         "softmax over the sequence axis (dim=1): each position's distribution is over the VOCABULARY, the "
         "last axis (dim=-1)."),
        (T * T * _token_mean(_kl(ls, lt), mask),
         "this is KL(p_s‖p_t) with the student first: the arguments are swapped. The distillation loss is "
         "KL(p_t‖p_s) at each token."),
        (_token_mean(per_token, mask), "the T² factor is missing: multiply the token mean by T²."),
        (T ** 4 * _token_mean(per_token, mask), "T² is applied twice: multiply by T² once."),
        (T * T * _token_mean(_kl(lt, torch.log_softmax(z, -1)), mask),
         "temperature on one side only: divide the student's logits by T too."),
        (T * T * _token_mean(_kl(torch.log_softmax(v, -1), ls), mask),
         "temperature on one side only: divide the teacher's logits by T too."),
        (T * T * per_token * mask, "you returned one value per token; reduce them to the token mean (a scalar)."),
    ]


def _token_kd_gradient(z: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, T: float) -> np.ndarray:
    """∂L/∂z = T·m·(p_s^T − p_t^T)/Σm at every position."""
    difference = torch.softmax(z / T, -1) - torch.softmax(v / T, -1)
    return (T * difference * mask.unsqueeze(-1) / mask.sum()).numpy()


def _judge_token_kd(results: Results, context: Context) -> None:
    for call in results.calls["token_kd_loss"]:
        z, v = _t(call.args[0]), _t(call.args[1])
        mask, T = _t(call.args[2]), float(call.args[3])
        call_text = f"token_kd_loss(student, teacher, mask, T={T}) on logits of shape {tuple(z.shape)}"
        actual = tensor_result(call, "token_kd_loss")
        correct, variants = token_kd_variants(z, v, mask, T)
        compare(call_text, actual, correct, variants, hidden=call.hidden)
        if not call.returned.requires_grad:
            raise Wrong(f"{call_text}: the value is right but no gradient flows to the student (.detach(), "
                        ".item() or numpy cut the computation graph).")
        if call.grad_problem:
            raise Wrong(f"{call_text}: {call.grad_problem}")
        grads = call.grads or {}
        teacher_grad = grads.get(1)
        if teacher_grad is not None and teacher_grad.kind == "tensor" and bool((np.abs(teacher_grad.data) > 0).any()):
            raise Wrong(f"{call_text}: the teacher's logits received a gradient. The teacher is fixed: use "
                        "teacher_logits.detach() (and run the teacher under torch.no_grad() in eval mode).")
        student_grad = grads.get(0)
        if student_grad is None or student_grad.kind == "none":
            raise Wrong(f"{call_text}: the student's logits received no gradient (the graph was cut).")
        expected = _token_kd_gradient(z, v, mask, T)
        got = as_array(student_grad, "the gradient of token_kd_loss")
        if not close(got, expected, rtol=RTOL, atol=ATOL):
            raise Wrong(f"{call_text}: the value is right but the gradient is not T·m·(p_s − p_t)/Σm: got "
                        f"{fmt(got)}{expected_clause(expected, call.hidden)}.")


def _static_token_kd(context: Context) -> None:
    forbid_delegation(context.code, "token_kd_loss", BANNED_LOSS_NAMES, BANNED_PACKAGES)


# --- next_token_loss ------------------------------------------------------------------------------------


def _ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−log softmax(logits)[target] at every position."""
    return -torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def next_token_variants(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Cross-entropy of logits[:, :-1] against tokens[:, 1:] over mask[:, 1:], and what misconceptions give."""
    shifted = _ce(logits[:, :-1], tokens[:, 1:])
    correct = _token_mean(shifted, mask[:, 1:])
    return correct, [
        (_token_mean(_ce(logits, tokens), mask),
         "logits and targets are not shifted: the logits at position i predict token i+1, so compare "
         "logits[:, :-1] with tokens[:, 1:]."),
        (_token_mean(_ce(logits[:, :-1], tokens[:, :-1]), mask[:, :-1]),
         "logits and targets are not shifted: you trimmed both to the same positions. The logits at position i "
         "predict token i+1: compare logits[:, :-1] with tokens[:, 1:]."),
        (_token_mean(_ce(logits[:, 1:], tokens[:, :-1]), mask[:, :-1]),
         "shifted the wrong way: the logits at position i predict the NEXT token, tokens[:, i + 1]; compare "
         "logits[:, :-1] with tokens[:, 1:]."),
        (_token_mean(_ce(logits[:, 1:], tokens[:, :-1]), mask[:, 1:]),
         "shifted the wrong way: compare logits[:, :-1] with tokens[:, 1:]."),
        (shifted.mean(), "padding counted: a prediction counts only where the next token is real; weight by "
                         "mask[:, 1:] and divide by its sum."),
        (_token_mean(shifted, mask[:, :-1]),
         "the mask of the wrong positions: the prediction at position i is of token i+1, so it counts where "
         "token i+1 is real, mask[:, 1:] (you used mask[:, :-1], which counts the prediction of the first "
         "padding token)."),
        ((shifted * mask[:, 1:]).sum(), "you summed over the tokens; divide by the number that count."),
    ]


def _judge_next_token(results: Results, context: Context) -> None:
    for call in results.calls["next_token_loss"]:
        logits = _t(call.args[0])
        tokens = torch.tensor(call.args[1], dtype=torch.int64)
        mask = _t(call.args[2])
        call_text = f"next_token_loss(logits of shape {tuple(logits.shape)}, tokens, mask)"
        actual = tensor_result(call, "next_token_loss")
        correct, variants = next_token_variants(logits, tokens, mask)
        compare(call_text, actual, correct, variants, hidden=call.hidden)


def _static_next_token(context: Context) -> None:
    forbid_delegation(context.code, "next_token_loss", BANNED_LOSS_NAMES, BANNED_PACKAGES)


# --- jsd_loss -------------------------------------------------------------------------------------------


def _jsd(lt: torch.Tensor, ls: torch.Tensor, teacher_weight: float, mixture_weight: float) -> torch.Tensor:
    """teacher_weight·KL(p_t‖m) + (1 − teacher_weight)·KL(p_s‖m), m = mixture_weight·p_t + (1 − mixture_weight)·p_s."""
    m = (mixture_weight * lt.exp() + (1 - mixture_weight) * ls.exp()).log()
    return teacher_weight * _kl(lt, m) + (1 - teacher_weight) * _kl(ls, m)


def jsd_variants(z: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, list]:
    """The token-mean JSD(β) (β = 0: KL(p_t‖p_s), β = 1: KL(p_s‖p_t)) and what misconceptions give instead."""
    ls, lt = torch.log_softmax(z, -1), torch.log_softmax(v, -1)
    if beta == 0:
        correct = _token_mean(_kl(lt, ls), mask)
    elif beta == 1:
        correct = _token_mean(_kl(ls, lt), mask)
    else:
        correct = _token_mean(_jsd(lt, ls, beta, beta), mask)
    variants = []
    if beta in (0, 1):
        variants.append((torch.tensor(0.0, dtype=torch.float64),
                         f"at beta = {beta:g} the JSD's own value is 0 (the mixture is one of the two distributions). "
                         "By the convention of this course (and TRL) beta = 0 is KL(p_t‖p_s) and beta = 1 is "
                         "KL(p_s‖p_t): return those at the end points."))
        swapped_end = _kl(ls, lt) if beta == 0 else _kl(lt, ls)
        variants.append((_token_mean(swapped_end, mask),
                         "the end points are swapped: beta = 0 is the forward KL(p_t‖p_s) and beta = 1 the reverse "
                         "KL(p_s‖p_t) (beta weights the teacher's term)."))
    else:
        variants += [
            (_token_mean(_jsd(lt, ls, beta, 1 - beta), mask),
             "the mixture's weights are swapped: m = beta·p_t + (1 − beta)·p_s."),
            (_token_mean(_jsd(lt, ls, 1 - beta, beta), mask),
             "the terms' weights are swapped: JSD(beta) = beta·KL(p_t‖m) + (1 − beta)·KL(p_s‖m)."),
            (_token_mean(_jsd(lt, ls, 0.5, 0.5), mask),
             "this is the plain Jensen–Shannon divergence (beta = 1/2) whatever beta is: use beta in the mixture "
             "and in the weights."),
            (_token_mean(_kl(lt, ls), mask) * beta + _token_mean(_kl(ls, lt), mask) * (1 - beta),
             "you mixed the two KLs between p_t and p_s; the JSD compares each with the MIXTURE m."),
            (_token_mean(_kl(ls, lt), mask) * beta + _token_mean(_kl(lt, ls), mask) * (1 - beta),
             "you mixed the two KLs between p_t and p_s; the JSD compares each with the MIXTURE m."),
        ]
    per_token = (_kl(lt, ls) if beta == 0 else _kl(ls, lt) if beta == 1 else _jsd(lt, ls, beta, beta))
    variants += [
        (per_token.mean(), "padding counted: weight each token by the mask and divide by mask.sum()."),
        (_token_mean(per_token, mask) / z.shape[-1], "mean over the vocabulary: sum the KL's terms over it."),
    ]
    return correct, variants


def _judge_jsd(results: Results, context: Context) -> None:
    for call in results.calls["jsd_loss"]:
        z, v = _t(call.args[0]), _t(call.args[1])
        mask, beta = _t(call.args[2]), float(call.args[3])
        call_text = f"jsd_loss(student, teacher, mask, beta={beta:g})"
        actual = tensor_result(call, "jsd_loss")
        correct, variants = jsd_variants(z, v, mask, beta)
        compare(call_text, actual, correct, variants, hidden=call.hidden)


def _static_jsd(context: Context) -> None:
    forbid_delegation(context.code, "jsd_loss", BANNED_LOSS_NAMES, BANNED_PACKAGES, allowed=("token_kd_loss",))


ITEMS = (
    Item("test_token_kd_loss",
         (Answer("token_kd_loss", "loss", ("tensor_grad", "tensor_grad", "tensor", "float"),
                 tuple([Z, V, MASK, T] for T in (1.0, 2.0, 4.0)), grads=(0, 1)),),
         _judge_token_kd, passed="token_kd_loss: checks passed", static=_static_token_kd),
    Item("test_next_token_loss",
         (Answer("next_token_loss", "call", ("tensor", "label_tensor", "tensor"), ([Z, TOKENS, NEXT_MASK],)),),
         _judge_next_token, passed="next_token_loss: checks passed", static=_static_next_token),
    Item("test_jsd_loss",
         (Answer("jsd_loss", "call", ("tensor", "tensor", "tensor", "float"),
                 tuple([Z, V, MASK, beta] for beta in (0.0, 0.5, 1.0, 0.2))),),
         _judge_jsd, passed="jsd_loss: checks passed", static=_static_jsd),
    choice_item("test_reverse_on_teacher_samples", "reverse_on_teacher_samples", ["a", "b", "c", "d"]),
    choice_item("test_two_temperatures", "two_temperatures", ["a", "b", "c", "d"]),
)
