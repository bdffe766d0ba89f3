r"""Weak-to-strong distillation on scikit-learn's digits (Burns et al. 2023, arXiv:2312.09390).

A *weak* teacher (a shallow decision tree) is trained on ground-truth labels. It then labels a
second, held-out half of the training data with its class probabilities, and a *strong* student
(a linear softmax model on the standardised pixels) is trained on those soft labels only, with the
distillation loss at :math:`T = 1`:

.. math::
    L(\theta) = \frac{1}{n}\sum_i \mathrm{KL}\big(p_{\text{weak}}(\cdot \mid x_i) \,\|\,
    p_\theta(\cdot \mid x_i)\big).

The same student trained on the true labels of that half is the *strong ceiling*. How much of the
gap between the weak teacher and the ceiling the distilled student closes is the
*performance gap recovered*:

.. math::
    \mathrm{PGR} = \frac{\mathrm{acc}_{\text{weak}\to\text{strong}} - \mathrm{acc}_{\text{weak}}}
                        {\mathrm{acc}_{\text{strong ceiling}} - \mathrm{acc}_{\text{weak}}}.

PGR = 0 means the student only copied its teacher; PGR = 1 means it did as well as if it had seen
the true labels. Everything here runs on the CPU in well under a second: the models are tiny.
scikit-learn is imported when a tree is trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdcourse._validation import MAX_SEED, check_scalar
from kdcourse.data import DataSplits, load_digits_splits
from kdcourse.losses import distillation_loss

if TYPE_CHECKING:
    from sklearn.tree import DecisionTreeClassifier

__all__ = [
    "performance_gap_recovered",
    "WeakToStrongAccuracies",
    "WeakToStrongResult",
    "SklearnTeacher",
    "train_weak_teacher",
    "fit_linear_student",
    "measure_weak_to_strong",
    "run_weak_to_strong",
]

#: Probabilities below this are raised to it before taking logs, so a tree's zero
#: probabilities become large negative (finite) logits.
PROBABILITY_FLOOR = 1e-8
#: What the strong student can learn from on the transfer half: the weak teacher's probabilities, or
#: its argmax as a one-hot (generated) label.
PSEUDO_LABELS = ("soft", "hard")


def _accuracy_value(value, name: str) -> float:
    return check_scalar(value, name, float, min_val=0, max_val=1)


def performance_gap_recovered(
    weak_accuracy: float, weak_to_strong_accuracy: float, strong_ceiling_accuracy: float
) -> float:
    r"""Share of the weak-to-ceiling accuracy gap that the distilled student closes.

    .. math::
        \mathrm{PGR} = \frac{a_{w\to s} - a_w}{a_{\text{ceil}} - a_w}

    Parameters
    ----------
    weak_accuracy : float
        Test accuracy :math:`a_w` of the weak teacher, in [0, 1].
    weak_to_strong_accuracy : float
        Test accuracy :math:`a_{w\to s}` of the strong student trained on the weak teacher's labels,
        in [0, 1].
    strong_ceiling_accuracy : float
        Test accuracy :math:`a_{\text{ceil}}` of the strong student trained on ground truth, in [0, 1].

    Returns
    -------
    float
        0 = no better than the teacher, 1 = the whole gap recovered. It can be negative (worse than
        the teacher) or above 1.

    Raises
    ------
    TypeError
        If an argument is not a real number.
    ValueError
        If an argument is outside [0, 1] or not finite, or the ceiling is not above the weak accuracy
        (then there is no gap to recover and PGR is undefined).
    """
    weak = _accuracy_value(weak_accuracy, "weak_accuracy")
    transferred = _accuracy_value(weak_to_strong_accuracy, "weak_to_strong_accuracy")
    ceiling = _accuracy_value(strong_ceiling_accuracy, "strong_ceiling_accuracy")
    if not ceiling > weak:
        raise ValueError(
            "strong_ceiling_accuracy must be above weak_accuracy: with no gap, PGR is undefined "
            f"(got ceiling {ceiling} and weak {weak})"
        )
    return (transferred - weak) / (ceiling - weak)


class SklearnTeacher(nn.Module):
    """Wrap a fitted scikit-learn classifier as a frozen torch "teacher" that returns logits.

    The logits are ``log(max(predict_proba(X), PROBABILITY_FLOOR))``, so ``softmax`` of them gives
    back the classifier's probabilities (up to the floor). No parameters, no gradient.

    Parameters
    ----------
    classifier : fitted scikit-learn classifier
        Must have ``predict_proba`` and have been fitted on the classes ``0 .. num_classes - 1``.
    num_classes : int
        Number of classes, >= 1.

    Raises
    ------
    TypeError
        If ``num_classes`` is not an int.
    ValueError
        If ``num_classes < 1``, the classifier has no ``predict_proba``, or was fitted on other classes.
    """

    def __init__(self, classifier, num_classes: int):
        super().__init__()
        num_classes = check_scalar(num_classes, "num_classes", int, min_val=1)
        if not hasattr(classifier, "predict_proba"):
            raise ValueError("classifier must have a predict_proba method (a fitted scikit-learn classifier)")
        classes = np.asarray(getattr(classifier, "classes_", np.arange(num_classes)))
        if classes.tolist() != list(range(num_classes)):
            raise ValueError(
                f"classifier must have been fitted on all classes 0..{num_classes - 1} (got classes {classes.tolist()})"
            )
        self.classifier = classifier
        self.num_classes = num_classes

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(n, num_classes)``, on ``X``'s device, in ``X``'s float dtype (else float32)."""
        probabilities = self.classifier.predict_proba(X.detach().cpu().numpy())
        logits = np.log(np.maximum(probabilities, PROBABILITY_FLOOR))
        return torch.as_tensor(logits, dtype=X.dtype if X.is_floating_point() else torch.float32, device=X.device)


def train_weak_teacher(X: np.ndarray, y: np.ndarray, max_depth: int = 5, seed: int = 0) -> DecisionTreeClassifier:
    """A decision tree of depth at most ``max_depth`` fitted on ground-truth labels.

    Parameters
    ----------
    X : numpy.ndarray
        ``(n, num_features)`` features.
    y : numpy.ndarray
        ``(n,)`` labels.
    max_depth : int, default=5
        >= 1.
    seed : int, default=0
        The tree's ``random_state``, in ``[0, 2**32 - 1]``.

    Returns
    -------
    sklearn.tree.DecisionTreeClassifier

    Raises
    ------
    TypeError
        If ``max_depth`` or ``seed`` is not an int.
    ValueError
        If ``max_depth < 1`` or ``seed`` is out of range.
    """
    from sklearn.tree import DecisionTreeClassifier

    max_depth = check_scalar(max_depth, "max_depth", int, min_val=1)
    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED)
    return DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(X, y)


def fit_linear_student(
    X: torch.Tensor,
    target_probabilities: torch.Tensor,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    confidence_weight: float = 0.0,
    warmup_fraction: float = 0.2,
) -> nn.Linear:
    r"""Train a linear softmax student on soft targets with :math:`\mathrm{KL}(p_{\text{target}} \| p_\theta)`.

    One-hot targets make this ordinary cross-entropy training (KL and CE differ by the targets'
    entropy, which is 0 for one-hot rows). Adam, mini-batches, a fixed number of epochs: with so
    few epochs the student stops before it has memorised the teacher's mistakes, which is what
    lets it generalise past its teacher (Burns et al. note the same role of early stopping).

    ``confidence_weight`` :math:`w > 0` adds the auxiliary confidence loss of Burns et al. (2023):

    .. math::
        L = (1 - w_t)\,\mathrm{KL}(p_{\text{target}} \,\|\, p_\theta) + w_t\,\mathrm{CE}(\hat y_\theta, p_\theta),

    where :math:`\hat y_\theta` is the student's own hardened prediction (the argmax of its
    probabilities divided by their batch mean per class, so that no class takes over) and
    :math:`w_t` rises linearly from 0 to :math:`w` over the first ``warmup_fraction`` of the steps.
    It lets the strong student trust itself where the weak teacher is unsure.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, num_features)`` features.
    target_probabilities : torch.Tensor
        ``(n, num_classes)`` rows that are distributions (soft labels, or one-hot for ground truth).
    epochs : int, default=10
        Passes over the data, >= 0.
    lr : float, default=0.01
        Adam's learning rate, > 0.
    batch_size : int, default=64
        >= 1.
    seed : int, default=0
        Seeds the initialisation and the shuffling, in ``[0, 2**32 - 1]``.
    confidence_weight : float, default=0.0
        :math:`w`, in [0, 1).
    warmup_fraction : float, default=0.2
        Share of the steps over which :math:`w_t` rises to :math:`w`, in [0, 1].

    Returns
    -------
    torch.nn.Linear
        The trained student (logits ``X @ W.T + b``).

    Raises
    ------
    TypeError
        If a scalar argument has the wrong type.
    ValueError
        A scalar argument out of range, mismatched shapes, or rows of ``target_probabilities`` that are
        not distributions.
    """
    epochs = check_scalar(epochs, "epochs", int, min_val=0)
    lr = check_scalar(lr, "lr", float, min_val=0, include_boundaries="neither")
    batch_size = check_scalar(batch_size, "batch_size", int, min_val=1)
    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED)
    confidence_weight = check_scalar(confidence_weight, "confidence_weight", float, min_val=0, max_val=1,
                                     include_boundaries="left")
    warmup_fraction = check_scalar(warmup_fraction, "warmup_fraction", float, min_val=0, max_val=1)
    if X.ndim != 2 or target_probabilities.ndim != 2 or X.shape[0] != target_probabilities.shape[0]:
        raise ValueError(
            "X must be (n, features) and target_probabilities (n, classes) with the same n "
            f"(got {tuple(X.shape)} and {tuple(target_probabilities.shape)})"
        )
    sums = target_probabilities.sum(dim=1)
    if bool((target_probabilities < 0).any()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise ValueError("target_probabilities must have non-negative rows that sum to 1")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    student = nn.Linear(X.shape[1], target_probabilities.shape[1])
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher_logits = torch.log(target_probabilities.clamp_min(PROBABILITY_FLOOR))
    n = X.shape[0]
    warmup_steps = max(1.0, warmup_fraction * epochs * math.ceil(n / batch_size))
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            logits = student(X[index])
            loss = distillation_loss(logits, teacher_logits[index], temperature=1.0, check_finite=False)
            if confidence_weight > 0:
                weight = confidence_weight * min(1.0, step / warmup_steps)
                loss = (1 - weight) * loss + weight * F.cross_entropy(logits, _hardened(logits))
            loss.backward()
            optimizer.step()
            step += 1
    return student


def _hardened(logits: torch.Tensor) -> torch.Tensor:
    """The student's own class-balanced hard labels: argmax of p / (batch mean of p), no gradient."""
    probabilities = torch.softmax(logits.detach(), dim=-1)
    return (probabilities / probabilities.mean(dim=0, keepdim=True)).argmax(dim=-1)


@dataclass(frozen=True)
class WeakToStrongAccuracies:
    """Test accuracies of the three models of the experiment, and the split sizes.

    The performance gap recovered is left out on purpose: it is computed from these three numbers
    (see :func:`performance_gap_recovered` and :class:`WeakToStrongResult`).

    Attributes
    ----------
    weak_accuracy : float
        The tree teacher's test accuracy.
    weak_to_strong_accuracy : float
        The linear student's, trained on the tree's soft labels.
    strong_ceiling_accuracy : float
        The linear student's, trained on the true labels of the same examples.
    student_teacher_agreement : float
        Share of test examples where the distilled student and the tree predict the same class.
    weak_train_size, transfer_size, test_size : int
        Examples the tree learned from, the student learned from, and tested on.
    """

    weak_accuracy: float
    weak_to_strong_accuracy: float
    strong_ceiling_accuracy: float
    student_teacher_agreement: float
    weak_train_size: int
    transfer_size: int
    test_size: int

    def as_dict(self) -> dict:
        """The fields by name."""
        return asdict(self)


@dataclass(frozen=True)
class WeakToStrongResult(WeakToStrongAccuracies):
    """The accuracies of :class:`WeakToStrongAccuracies` and the PGR computed from them."""

    performance_gap_recovered: float = math.nan

    def table(self) -> str:
        """A small plain-text table for printing in a notebook."""
        rows = [
            ("weak teacher (tree, true labels)", self.weak_accuracy),
            ("strong student on weak soft labels", self.weak_to_strong_accuracy),
            ("strong ceiling (true labels)", self.strong_ceiling_accuracy),
        ]
        lines = [f"{'model':<38}{'test accuracy':>14}"]
        lines += [f"{name:<38}{value:>14.3f}" for name, value in rows]
        lines.append(f"{'performance gap recovered (PGR)':<38}{self.performance_gap_recovered:>14.2f}")
        return "\n".join(lines)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == y).double().mean())


def measure_weak_to_strong(
    data: DataSplits | None = None,
    max_depth: int = 5,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    confidence_weight: float = 0.0,
    pseudo_labels: str = "soft",
) -> WeakToStrongAccuracies:
    """The whole weak-to-strong experiment on the CPU; deterministic for a given ``seed``.

    The training split of ``data`` (default: ``load_digits_splits(seed=0)``) is cut in two
    stratified halves: the weak tree learns from the first half's true labels; the linear student
    learns from the tree's probabilities on the second half (weak-to-strong) or from that half's
    true labels (ceiling). Accuracies are on the test split. With the defaults: weak ≈ 0.68,
    ceiling ≈ 0.94, weak-to-strong ≈ 0.81.

    ``pseudo_labels="hard"`` replaces the tree's probabilities by its argmax, one-hot: the student
    then learns from labels the weak model *generated* (synthetic data) instead of from its whole
    distribution, and the loss becomes plain cross-entropy on those labels.

    Parameters
    ----------
    data : DataSplits, optional
        Default ``load_digits_splits(seed=0)``; moved to the CPU.
    max_depth : int, default=5
        Depth of the weak tree, see :func:`train_weak_teacher`.
    epochs, lr, batch_size, seed, confidence_weight
        As for :func:`fit_linear_student`; ``seed`` also seeds the halving and the tree.
    pseudo_labels : {"soft", "hard"}, default="soft"
        What the student learns from on the transfer half: the tree's probabilities (the
        distillation loss) or its one-hot argmax (generated hard labels).

    Returns
    -------
    WeakToStrongAccuracies
        The accuracies only (no PGR).

    Raises
    ------
    TypeError, ValueError
        For a bad scalar argument (``seed`` here, the others by :func:`train_weak_teacher` and
        :func:`fit_linear_student`), or ``pseudo_labels`` other than ``"soft"`` or ``"hard"``.
    """
    from sklearn.model_selection import train_test_split

    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED)
    if pseudo_labels not in PSEUDO_LABELS:
        raise ValueError(f"pseudo_labels must be one of {PSEUDO_LABELS} (got {pseudo_labels!r})")
    data = (data if data is not None else load_digits_splits(seed=0)).to("cpu")
    X_train = data.X_train.numpy()
    y_train = data.y_train.numpy()
    X_weak, X_transfer, y_weak, y_transfer = train_test_split(
        X_train, y_train, test_size=0.5, random_state=seed, stratify=y_train
    )
    num_classes = data.num_classes
    tree = train_weak_teacher(X_weak, y_weak, max_depth=max_depth, seed=seed)
    teacher = SklearnTeacher(tree, num_classes)

    X_transfer_t = torch.as_tensor(X_transfer, dtype=torch.float32)
    soft_labels = torch.as_tensor(tree.predict_proba(X_transfer), dtype=torch.float32)
    if pseudo_labels == "hard":
        soft_labels = F.one_hot(soft_labels.argmax(dim=1), num_classes).float()
    one_hot = F.one_hot(torch.as_tensor(y_transfer), num_classes).float()
    settings = dict(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    distilled = fit_linear_student(X_transfer_t, soft_labels, confidence_weight=confidence_weight, **settings)
    ceiling = fit_linear_student(X_transfer_t, one_hot, **settings)

    with torch.no_grad():
        teacher_logits = teacher(data.X_test)
        distilled_logits = distilled(data.X_test)
        weak = _accuracy(teacher_logits, data.y_test)
        transferred = _accuracy(distilled_logits, data.y_test)
        top = _accuracy(ceiling(data.X_test), data.y_test)
        agreement = float((distilled_logits.argmax(1) == teacher_logits.argmax(1)).double().mean())
    return WeakToStrongAccuracies(
        weak_accuracy=weak,
        weak_to_strong_accuracy=transferred,
        strong_ceiling_accuracy=top,
        student_teacher_agreement=agreement,
        weak_train_size=len(y_weak),
        transfer_size=len(y_transfer),
        test_size=len(data.y_test),
    )


def run_weak_to_strong(data: DataSplits | None = None, **settings: Any) -> WeakToStrongResult:
    """:func:`measure_weak_to_strong` plus the performance gap recovered of its three accuracies.

    With the defaults: weak ≈ 0.68, ceiling ≈ 0.94, weak-to-strong ≈ 0.81, PGR ≈ 0.5.

    Parameters
    ----------
    data : DataSplits, optional
        As for :func:`measure_weak_to_strong`.
    **settings
        ``max_depth``, ``epochs``, ``lr``, ``batch_size``, ``seed``, ``confidence_weight``,
        ``pseudo_labels``: the keyword
        arguments of :func:`measure_weak_to_strong`, with its defaults.

    Returns
    -------
    WeakToStrongResult

    Raises
    ------
    TypeError, ValueError
        As :func:`measure_weak_to_strong`, and as :func:`performance_gap_recovered` when the ceiling is
        not above the weak accuracy.
    """
    accuracies = measure_weak_to_strong(data, **settings)
    pgr = performance_gap_recovered(
        accuracies.weak_accuracy, accuracies.weak_to_strong_accuracy, accuracies.strong_ceiling_accuracy
    )
    return WeakToStrongResult(**accuracies.as_dict(), performance_gap_recovered=pgr)
