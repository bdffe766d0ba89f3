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

__all__ = ["mean_entropy", "compare_directions_on_digits"]


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
