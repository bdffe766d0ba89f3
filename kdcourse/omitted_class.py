r"""Hinton et al.'s (2015) omitted-class experiment on the digits: dark knowledge, measured.

A teacher is trained on every class. A student is then trained on a **transfer set** from which one class
(the 3s) has been removed, either on the labels of that set or by distillation, :math:`T^2\,\mathrm{KL}(p_t^T\,\|\,
p_s^T)` at a temperature :math:`T`. The student never sees a 3; the only thing that can teach it about 3s is
the probability the teacher gives to "3" on *other* digits (an 8 that looks a little like a 3). We measure
the share of the test 3s the student gets right.

A student that never saw the class has a too-low bias for it. Hinton et al. raised the class-3 bias by 3.5
and chose that value on the **test** set; here the bias is chosen on the **validation** split (the value
that maximises validation accuracy), so the test numbers stay honest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kdcourse._validation import check_scalar
from kdcourse.data import DataSplits
from kdcourse.models import make_mlp
from kdcourse.training import distill, seed_everything, train

__all__ = ["OmittedClassRun", "without_class", "tune_class_bias", "run_omitted_class", "BIAS_CANDIDATES"]

#: The class-bias values the validation split chooses from.
BIAS_CANDIDATES = tuple(float(b) for b in np.linspace(0.0, 12.0, 49))


@dataclass(frozen=True)
class OmittedClassRun:
    """One student of the experiment, measured on the test split.

    Attributes
    ----------
    method : str
        ``"labels only"`` or ``"distilled, T = <T>"``.
    seed : int
    omitted_correct : float
        Share of the test examples of the omitted class that the student classifies correctly.
    bias : float
        The class bias chosen on the validation split.
    omitted_correct_with_bias : float
        The same share with that bias added to the omitted class's logit.
    test_accuracy, test_accuracy_with_bias : float
        Accuracy on the whole test split, without and with the bias.
    """

    method: str
    seed: int
    omitted_correct: float
    bias: float
    omitted_correct_with_bias: float
    test_accuracy: float
    test_accuracy_with_bias: float


def without_class(data: DataSplits, omitted: int) -> DataSplits:
    """``data`` with every training example of class ``omitted`` removed (validation and test untouched)."""
    omitted = check_scalar(omitted, "omitted", int, min_val=0, max_val=data.num_classes - 1)
    keep = data.y_train != omitted
    return DataSplits(data.X_train[keep], data.y_train[keep], data.X_val, data.y_val, data.X_test, data.y_test)


def _predict(logits: torch.Tensor, omitted: int, bias: float) -> torch.Tensor:
    shifted = logits.clone()
    shifted[:, omitted] += bias
    return shifted.argmax(dim=1)


def tune_class_bias(logits: torch.Tensor, labels: torch.Tensor, omitted: int,
                    candidates: Sequence[float] = BIAS_CANDIDATES) -> float:
    """The bias for class ``omitted`` that maximises accuracy on (``logits``, ``labels``); the smallest on ties."""
    accuracies = [float((_predict(logits, omitted, b) == labels).float().mean()) for b in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def _measure(student: torch.nn.Module, data: DataSplits, omitted: int, method: str, seed: int) -> OmittedClassRun:
    with torch.no_grad():
        val_logits, test_logits = student(data.X_val), student(data.X_test)
    bias = tune_class_bias(val_logits, data.y_val, omitted)
    is_omitted = data.y_test == omitted

    def scores(b: float) -> tuple[float, float]:
        predicted = _predict(test_logits, omitted, b)
        return (float((predicted[is_omitted] == omitted).float().mean()),
                float((predicted == data.y_test).float().mean()))

    (plain_share, plain_accuracy), (biased_share, biased_accuracy) = scores(0.0), scores(bias)
    return OmittedClassRun(method, seed, plain_share, bias, biased_share, plain_accuracy, biased_accuracy)


def run_omitted_class(teacher: torch.nn.Module, data: DataSplits, omitted: int = 3,
                      temperatures: Iterable[float] = (1.0, 4.0, 10.0), seeds: Iterable[int] = range(5),
                      hidden: int = 32, epochs: int = 30, device: torch.device | str | None = None
                      ) -> list[OmittedClassRun]:
    """For each seed, one student on the labels of the transfer set without class ``omitted``, and one
    distilled from ``teacher`` on it at each temperature (pure distillation, ``alpha = 0``)."""
    transfer = without_class(data, omitted)
    runs = []
    for seed in seeds:
        seed_everything(seed)
        student = make_mlp(data.num_features, data.num_classes, hidden=(hidden,))
        train(student, transfer, epochs=epochs, device=device, progress=False, seed=seed)
        runs.append(_measure(student, data, omitted, "labels only", seed))
        for temperature in temperatures:
            seed_everything(seed)
            student = make_mlp(data.num_features, data.num_classes, hidden=(hidden,))
            distill(student, teacher, transfer, epochs=epochs, temperature=temperature, device=device,
                    progress=False, seed=seed)
            runs.append(_measure(student, data, omitted, f"distilled, T = {temperature:g}", seed))
    return runs
