r"""The distillation runs of assignment 4 in which the dissimilarity score falls, and scenario C's predictions.

Assignment 4 distils a small student from three teachers on the digits and watches the validation KL to
the teacher, :math:`\overline{\mathrm{KL}}(p_t\,\|\,p_\theta)`, fall in every run while accuracy rises,
stays flat or falls. Every run follows one recipe, :func:`distil_scenario`: seed the random number
generators, build a student with 16 hidden units, train it on the true labels for a few epochs (possibly
none), keep a copy (the student *before* distillation), then distil for 20 epochs with pure distillation
(:math:`T = 1`, :math:`\alpha = 0`): the student *after*.

**Scenario C** is the run whose accuracy falls, and the one the assignment's exercise 1.3 measures:

* the digits split with seed 0 (:func:`kdcourse.data.load_digits_splits`);
* the teacher: a decision tree of depth 5 fitted on the whole training split (:func:`tree_teacher`);
* the student seeded with 1, trained on the labels for 5 epochs ("before"), then distilled for 20 epochs
  at :math:`T = 1`, :math:`\alpha = 0` ("after").

The notebook runs it with :func:`scenario_c` and reads its test-set predictions with
:func:`predictions_on_test_split`; the grader's judge reruns it with :func:`scenario_c_predictions` to know what
the accuracies and the shares of copied teacher errors must be. On the CPU the rerun reproduces the
notebook's run exactly. Nothing here restores the random number generators: :func:`distil_scenario`
reseeds them, as the notebook always did.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from kdcourse.data import DataSplits, load_digits_splits
from kdcourse.models import make_student
from kdcourse.training import History, distill, seed_everything, train
from kdcourse.weak_to_strong import SklearnTeacher, train_weak_teacher

__all__ = [
    "STUDENT_WIDTH",
    "DISTILL_EPOCHS",
    "SCENARIO_C",
    "ScenarioRun",
    "Predictions",
    "distil_scenario",
    "tree_teacher",
    "scenario_c",
    "predictions_on_test_split",
    "scenario_c_predictions",
]

#: Hidden units of every student.
STUDENT_WIDTH = 16
#: Epochs of distillation in every run.
DISTILL_EPOCHS = 20
#: Scenario C's recipe: the digits split's seed, the tree's depth, the student's seed and its epochs on labels.
SCENARIO_C = {"split_seed": 0, "max_depth": 5, "seed": 1, "pretrain_epochs": 5}


class ScenarioRun(NamedTuple):
    """One run: the student before distillation, the same student after it, and the distillation history.

    A tuple, so ``before, after, history = run`` works.
    """

    before: nn.Module
    after: nn.Module
    history: History


class Predictions(NamedTuple):
    """Predicted classes on the test split (1-D int64 CPU tensors of equal length)."""

    before: torch.Tensor
    after: torch.Tensor
    teacher: torch.Tensor
    labels: torch.Tensor


def distil_scenario(teacher: nn.Module, data: DataSplits, pretrain_epochs: int, seed: int,
                    device: torch.device | str | None = None) -> ScenarioRun:
    r"""Train a 16-unit student on labels for ``pretrain_epochs``, then distil ``teacher`` into it for 20 epochs.

    The random number generators are seeded with ``seed`` first (:func:`kdcourse.training.seed_everything`),
    so the run does not depend on what ran before it. Distillation is pure (:math:`\alpha = 0`) at
    :math:`T = 1`.

    Parameters
    ----------
    teacher : torch.nn.Module or callable
        Maps features to logits; never updated.
    data : DataSplits
        The digits splits (on ``device``).
    pretrain_epochs : int
        Epochs of training on the true labels before distillation, >= 0 (0: a fresh student).
    seed : int
        Seeds the student's initialisation.
    device : torch.device or str, optional
        Where to train; default :func:`kdcourse.device.pick_device`.

    Returns
    -------
    ScenarioRun
        ``before`` is a copy of the student taken just before distillation; ``after`` the distilled student;
        ``history`` the distillation's per-epoch record (validation KL to the teacher, accuracy, agreement).
    """
    seed_everything(seed)
    student = make_student(data.num_features, data.num_classes, width=STUDENT_WIDTH)
    if pretrain_epochs:
        train(student, data, epochs=pretrain_epochs, device=device, progress=False)
    before = copy.deepcopy(student)
    history = distill(student, teacher, data, epochs=DISTILL_EPOCHS, temperature=1.0, alpha=0.0, device=device,
                      progress=False)
    return ScenarioRun(before, student, history)


def tree_teacher(data: DataSplits, max_depth: int = SCENARIO_C["max_depth"]) -> SklearnTeacher:
    """A decision tree fitted on the whole training split, wrapped as a frozen torch teacher.

    Parameters
    ----------
    data : DataSplits
    max_depth : int, default=5

    Returns
    -------
    SklearnTeacher
        The tree's log-probabilities as logits (the tree's ``random_state`` is fixed, so it is always the same).
    """
    tree = train_weak_teacher(data.X_train.cpu().numpy(), data.y_train.cpu().numpy(), max_depth=max_depth)
    return SklearnTeacher(tree, data.num_classes)


def scenario_c(data: DataSplits, device: torch.device | str | None = None) -> tuple[SklearnTeacher, ScenarioRun]:
    """Scenario C on ``data``: the depth-5 tree teacher, and a student trained 5 epochs on labels, then distilled.

    Parameters
    ----------
    data : DataSplits
        The digits split with seed 0 (on ``device``) for the assignment's numbers.
    device : torch.device or str, optional
        Where to train.

    Returns
    -------
    (SklearnTeacher, ScenarioRun)
        The tree teacher and the run (student seeded with 1).
    """
    teacher = tree_teacher(data, max_depth=SCENARIO_C["max_depth"])
    run = distil_scenario(teacher, data, pretrain_epochs=SCENARIO_C["pretrain_epochs"], seed=SCENARIO_C["seed"],
                          device=device)
    return teacher, run


def _predict(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(X).argmax(dim=1).cpu()


def predictions_on_test_split(run: ScenarioRun, teacher: nn.Module, data: DataSplits) -> Predictions:
    """Predicted classes on the test split: the student before and after distillation, the teacher; and the labels.

    Parameters
    ----------
    run : ScenarioRun
    teacher : torch.nn.Module or callable
    data : DataSplits

    Returns
    -------
    Predictions
        int64 CPU tensors.
    """
    return Predictions(_predict(run.before, data.X_test), _predict(run.after, data.X_test),
                           _predict(teacher, data.X_test), data.y_test.cpu())


def scenario_c_predictions(device: torch.device | str = "cpu") -> Predictions:
    """Run scenario C from scratch (digits split with seed 0) and return its test-set predictions.

    Parameters
    ----------
    device : torch.device or str, default="cpu"
        Where to train. On the CPU with one torch thread the result equals the assignment notebook's.

    Returns
    -------
    Predictions
    """
    data = load_digits_splits(seed=SCENARIO_C["split_seed"]).to(device)
    teacher, run = scenario_c(data, device)
    return predictions_on_test_split(run, teacher, data)
