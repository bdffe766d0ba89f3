r"""Few labels and a teacher: when the combined objective beats both of its terms.

Only a handful of training examples have true labels; a teacher gives soft labels on every training input.
The student minimises, per step,

.. math::
    \alpha\,\mathrm{CE}\big(y, p_s\big)\big|_{\text{labelled examples}}
    + (1 - \alpha)\,T^2\,\mathrm{KL}\big(p_t^T \,\|\, p_s^T\big)\big|_{\text{a batch of all inputs}}

(``alpha`` weights the hard-label term, as everywhere in the course): ``alpha = 1`` is training on the few
labels alone, ``alpha = 0`` pure imitation of the teacher on all inputs. Hinton et al. (2015) found the best
results with a considerably lower weight on the hard-label term.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcourse._validation import check_scalar
from kdcourse.data import DataSplits
from kdcourse.losses import per_example_distillation_loss
from kdcourse.models import make_mlp
from kdcourse.training import seed_everything

__all__ = ["FewLabelsRun", "labelled_subset", "train_with_few_labels", "sweep_alpha_and_temperature"]


@dataclass(frozen=True)
class FewLabelsRun:
    """One student: its ``alpha``, ``temperature`` and ``seed``, and its accuracy on the test split."""

    alpha: float
    temperature: float
    seed: int
    test_accuracy: float


def labelled_subset(data: DataSplits, size: int, seed: int) -> torch.Tensor:
    """Indices of ``size`` training examples (drawn with ``seed``) whose labels the student may use."""
    size = check_scalar(size, "size", int, min_val=1, max_val=len(data.y_train))
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(data.y_train), generator=generator)[:size]


def train_with_few_labels(student: torch.nn.Module, teacher_logits: torch.Tensor, data: DataSplits,
                          labelled: torch.Tensor, alpha: float, temperature: float, epochs: int = 30,
                          batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> torch.nn.Module:
    """Train ``student`` in place on the objective of the module docstring; ``teacher_logits`` are the
    teacher's logits on ``data.X_train`` (computed once)."""
    alpha = check_scalar(alpha, "alpha", float, min_val=0, max_val=1)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    X_labelled, y_labelled = data.X_train[labelled], data.y_train[labelled]
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.X_train)
    student.train()
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            loss = torch.zeros(())
            if alpha > 0:
                loss = loss + alpha * F.cross_entropy(student(X_labelled), y_labelled)
            if alpha < 1:
                soft = per_example_distillation_loss(student(data.X_train[batch]), log_p_teacher[batch], temperature)
                loss = loss + (1 - alpha) * soft.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    student.eval()
    return student


def sweep_alpha_and_temperature(teacher_logits: torch.Tensor, data: DataSplits, labels: int = 50,
                                alphas: Iterable[float] = (0.0, 0.5, 1.0),
                                temperatures: Iterable[float] = (2.0, 5.0), seeds: Iterable[int] = range(5),
                                hidden: int = 32, epochs: int = 20) -> list[FewLabelsRun]:
    """Test accuracy of a student for every (alpha, temperature) and seed; ``alpha = 1`` (labels only, where
    the temperature plays no part) is trained once per seed and reported at every temperature."""
    temperatures = list(temperatures)
    runs = []
    for seed in seeds:
        labelled = labelled_subset(data, labels, seed)
        for alpha in alphas:
            for index, temperature in enumerate(temperatures):
                if alpha == 1 and index > 0:
                    runs.append(FewLabelsRun(alpha, temperature, seed, runs[-1].test_accuracy))
                    continue
                seed_everything(seed)
                student = make_mlp(data.num_features, data.num_classes, hidden=(hidden,))
                train_with_few_labels(student, teacher_logits, data, labelled, alpha, temperature, epochs, seed=seed)
                with torch.no_grad():
                    accuracy = float((student(data.X_test).argmax(dim=1) == data.y_test).float().mean())
                runs.append(FewLabelsRun(alpha, temperature, seed, accuracy))
    return runs
