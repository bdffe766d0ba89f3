r"""The language-model unit's experiments, over seeds: what a student learns from each kind of transfer set,
and what the direction of the KL does to the text a student writes.

Each function trains small students from the shipped teacher and returns one row per (method, seed), so a
notebook can print the mean ± sd of every column and plot the spread. The sizes default to what runs in
well under a minute on two CPU cores; pass larger ``steps`` for steadier numbers.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from kdcourse._validation import check_scalar
from kdcourse.lm.model import STUDENT_CONFIG, CausalLM, LMConfig
from kdcourse.lm.text import CharTokenizer, TextSplits, random_windows
from kdcourse.lm.training import (
    distill_on_policy,
    evaluate_language_model,
    generate,
    generated_transfer_set,
    real_text_transfer_set,
    sample_statistics,
    train_on_transfer_set,
)

__all__ = ["TRANSFER_METHODS", "DIRECTION_METHODS", "Row", "compare_transfer_sets", "compare_directions",
           "summarise"]

#: What :func:`compare_transfer_sets` trains, in order.
TRANSFER_METHODS = ("labels only (real text)", "token-level KD (real text, soft)",
                    "sequence-level KD (teacher's samples, hard)")
#: What :func:`compare_directions` trains, in order.
DIRECTION_METHODS = ("forward KL, real text", "reverse KL, on-policy")


@dataclass(frozen=True)
class Row:
    """One student: the method, the seed, what was measured (named numbers) and, where it wrote text, one
    of its samples."""

    method: str
    seed: int
    scores: dict[str, float]
    example: str = ""


def _student(seed: int, config: LMConfig, teacher: CausalLM) -> CausalLM:
    """A fresh student, initialised from ``seed``, on the teacher's device."""
    torch.manual_seed(seed)
    return CausalLM(config).to(next(teacher.parameters()).device)


def _transfer_set(method: str, teacher: CausalLM, splits: TextSplits, size: int, length: int, seed: int):
    """The transfer set of one of :data:`TRANSFER_METHODS`, and its targets (``"hard"`` or ``"soft"``)."""
    if method == TRANSFER_METHODS[0]:
        return real_text_transfer_set(splits.train, size, length, seed=seed), "hard"
    if method == TRANSFER_METHODS[1]:
        return real_text_transfer_set(splits.train, size, length, seed=seed, teacher=teacher), "soft"
    return generated_transfer_set(teacher, splits.train, size, length, seed=seed), "hard"


def compare_transfer_sets(teacher: CausalLM, splits: TextSplits, seeds=range(5), steps: int = 150,
                          batch_size: int = 16, transfer_size: int = 256, length: int = 32,
                          student_config: LMConfig = STUDENT_CONFIG) -> list[Row]:
    """Students of the same size, steps and batch, trained three ways (:data:`TRANSFER_METHODS`).

    Every transfer set holds ``transfer_size`` sequences of ``length`` predicted tokens, drawn afresh for
    each seed; the sequence-level set is sampled from the teacher (its cost, ``tokens generated``, is
    reported). Scores: per-token ``KL(p_t‖p_s)`` on held-out real text, the student's held-out cross-entropy
    (nats per character) and perplexity, tokens generated, and seconds.
    """
    steps = check_scalar(steps, "steps", int, min_val=1)
    rows = []
    for seed in seeds:
        for method in TRANSFER_METHODS:
            started = time.perf_counter()  # building the set is part of the cost: generating text is not free
            transfer, targets = _transfer_set(method, teacher, splits, transfer_size, length, seed)
            student = _student(seed, student_config, teacher)
            train_on_transfer_set(student, transfer, targets, steps=steps, batch_size=batch_size, seed=seed)
            scores = evaluate_language_model(student, splits.validation, teacher=teacher)
            rows.append(Row(method, seed, {"KL(p_t‖p_s)": scores.kl_to_teacher,
                                           "cross-entropy": scores.cross_entropy,
                                           "perplexity": scores.perplexity,
                                           "tokens generated": float(transfer.tokens_generated),
                                           "seconds": time.perf_counter() - started}))
    return rows


@torch.no_grad()
def _teacher_log_likelihood(teacher: CausalLM, samples: torch.Tensor, skip: int) -> float:
    """Mean log p_t of each sampled token after the prompt: how plausible the teacher finds the text."""
    log_p = torch.log_softmax(teacher(samples[:, :-1]).float(), dim=-1)
    picked = log_p.gather(-1, samples[:, 1:, None])[..., 0]
    return float(picked[:, skip:].mean())


def compare_directions(teacher: CausalLM, splits: TextSplits, seeds=range(5), steps: int = 150,
                       batch_size: int = 16, length: int = 32, prompt_tokens: int = 8, samples: int = 32,
                       student_config: LMConfig = STUDENT_CONFIG) -> list[Row]:
    """A student distilled with the forward KL on real text vs with the reverse KL on its own samples.

    Then each student writes ``samples`` continuations of held-out prompts (sampling temperature 1), and
    we measure: the student's entropy per token along its text, distinct-3 of the text (lower: more
    repetitive), how plausible the teacher finds it (mean :math:`\\log p_t` per token: lower means tokens
    the teacher would rarely write), and the held-out forward ``KL(p_t‖p_s)``.
    """
    rows = []
    for seed in seeds:
        prompts = random_windows(splits.test, samples, prompt_tokens - 1, torch.Generator().manual_seed(seed))
        for method in DIRECTION_METHODS:
            started = time.perf_counter()
            student = _student(seed, student_config, teacher)
            if method == DIRECTION_METHODS[0]:
                transfer = real_text_transfer_set(splits.train, 256, length, seed=seed, teacher=teacher)
                train_on_transfer_set(student, transfer, "soft", steps=steps, batch_size=batch_size, seed=seed)
            else:
                distill_on_policy(student, teacher, splits.train, steps=steps, batch_size=batch_size,
                                  length=length, prompt_tokens=prompt_tokens, direction="reverse", seed=seed)
            text = generate(student, prompts, length + 1 - prompt_tokens, generator=torch.Generator().manual_seed(seed))
            stats = sample_statistics(student, text, n=3, skip=prompt_tokens - 1)
            example = CharTokenizer().decode(text[0].cpu())
            rows.append(Row(method, seed, {
                "student entropy": stats["entropy_per_token"],
                "distinct-3": stats["distinct_3"],
                "teacher log p": _teacher_log_likelihood(teacher, text, prompt_tokens - 1),
                "KL(p_t‖p_s)": evaluate_language_model(student, splits.validation, teacher=teacher).kl_to_teacher,
                "seconds": time.perf_counter() - started}, example))
    return rows


def summarise(rows: list[Row]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {score: (mean, sd)}}`` over the seeds (sample standard deviation; 0 for one seed)."""
    by_method: dict[str, list[Row]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row)
    summary = {}
    for method, group in by_method.items():
        summary[method] = {}
        for name in group[0].scores:
            values = [row.scores[name] for row in group]
            summary[method][name] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return summary
