r"""Forward :math:`\mathrm{KL}(p_t\,\|\,p_s)` against reverse :math:`\mathrm{KL}(p_s\,\|\,p_t)` on a trained network, over seeds.

A small student is distilled from a trained teacher both ways (:func:`kdcourse.training.distill` with
``direction="forward"`` or ``"reverse"``, pure distillation) and measured on the test split: the mean entropy
of its predicted distributions (nats), its top-1 agreement with the teacher, and its accuracy. A student too
small to copy the teacher shows the difference: the reverse direction is mode-seeking, so its student is
more confident (lower entropy) than the forward one's.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from kdcourse.data import DataSplits
from kdcourse.losses import DIRECTIONS
from kdcourse.models import make_student
from kdcourse.training import distill, evaluate, seed_everything

__all__ = ["mean_entropy", "compare_directions_on_digits", "narrow_and_wide_students"]


def mean_entropy(logits: torch.Tensor) -> float:
    r"""Mean over examples of :math:`H(p) = -\sum_k p_k \log p_k` of ``softmax(logits)``, in nats."""
    with torch.no_grad():
        log_p = torch.log_softmax(logits.detach().double(), dim=-1)
        return float(-(log_p.exp() * log_p).sum(dim=-1).mean())


def compare_directions_on_digits(teacher: torch.nn.Module, data: DataSplits, width: int = 4,
                                 temperature: float = 1.0, seeds: Iterable[int] = range(5), epochs: int = 30,
                                 device: torch.device | str | None = None) -> dict[str, list[dict[str, float]]]:
    """``{direction: [scores of each seed]}``; scores are ``entropy``, ``agreement`` and ``accuracy`` on test."""
    results: dict[str, list[dict[str, float]]] = {direction: [] for direction in DIRECTIONS}
    for seed in seeds:
        for direction in DIRECTIONS:
            seed_everything(seed)
            student = make_student(data.num_features, data.num_classes, width=width)
            distill(student, teacher, data, epochs=epochs, temperature=temperature, direction=direction,
                    device=device, progress=False, seed=seed)
            scores = evaluate(student, data.X_test, data.y_test, teacher)
            with torch.no_grad():
                entropy = mean_entropy(student(data.X_test))
            results[direction].append({"entropy": entropy, "agreement": scores["agreement"],
                                       "accuracy": scores["accuracy"]})
    return results


def narrow_and_wide_students(widths: Iterable[int] = (4, 64), seeds: Iterable[int] = range(5),
                             epochs: int = 30) -> dict[int, dict[str, list[dict[str, float]]]]:
    r""":func:`compare_directions_on_digits` for students of several widths, from one fixed teacher, on the CPU.

    The teacher is an MLP with 128 hidden units trained for 20 epochs on ``load_digits_splits(seed=0)``
    after ``seed_everything(0)``; everything runs on the CPU, so a rerun in another process with one torch
    thread gives the same numbers. A student wide enough to copy the teacher is minimised by
    :math:`p_\theta \approx p_t` in both directions, so the entropy gap between its
    :math:`\mathrm{KL}(p_t\,\|\,p_\theta)` and :math:`\mathrm{KL}(p_\theta\,\|\,p_t)` students closes.

    Returns
    -------
    dict
        ``{width: {direction: [scores of each seed]}}``, scores as in :func:`compare_directions_on_digits`.
    """
    from kdcourse.data import load_digits_splits
    from kdcourse.models import make_mlp
    from kdcourse.training import train

    data = load_digits_splits(seed=0)
    seed_everything(0)
    teacher = make_mlp(data.num_features, data.num_classes, hidden=(128,))
    train(teacher, data, epochs=20, device="cpu", progress=False)
    seeds = list(seeds)
    return {width: compare_directions_on_digits(teacher, data, width=width, seeds=seeds, epochs=epochs, device="cpu")
            for width in widths}
