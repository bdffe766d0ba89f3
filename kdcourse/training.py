r"""Training on labels and distilling from a teacher, fast on a CPU for toy sizes.

Both loops keep the whole dataset on the device, draw mini-batches by indexing a shuffled
permutation, precompute the (frozen) teacher's logits once, and synchronise with the host only
once per epoch. They return a :class:`History` whose entry 0 is measured before any update.
Every step's loss is :func:`kdcourse.losses.combined_loss_from_log_probs`, the same function
:func:`kdcourse.losses.combined_loss` and :func:`kdcourse.losses.distillation_loss` compute with.

The "dissimilarity score" logged as ``val_kl`` is the mean over validation examples of
:math:`\mathrm{KL}(p_t \,\|\, p_s)` at temperature 1, in nats, where :math:`p_t` is the teacher's
(or reference model's) prediction.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from kdcourse._validation import MAX_SEED, check_choice, check_scalar
from kdcourse.data import DataSplits
from kdcourse.device import pick_device
from kdcourse.losses import DIRECTIONS, combined_loss_from_log_probs, distillation_loss

__all__ = ["History", "seed_everything", "evaluate", "train", "distill", "progress_enabled"]

PROGRESS_ENV_VAR = "KDCOURSE_PROGRESS"


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, numpy's and torch's random number generators (CPU and CUDA).

    Parameters
    ----------
    seed : int, default=0
        In ``[0, 2**32 - 1]`` (numpy's range).

    Raises
    ------
    TypeError
        If ``seed`` is not an int.
    ValueError
        If ``seed`` is out of range.
    """
    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_enabled(progress: bool | None = None) -> bool:
    """Resolve the ``progress`` argument.

    Parameters
    ----------
    progress : bool or None, default=None
        ``None`` means on unless the environment variable ``KDCOURSE_PROGRESS`` is ``0``, ``false``,
        ``no`` or ``off``.

    Returns
    -------
    bool
    """
    if progress is not None:
        return bool(progress)
    return os.environ.get(PROGRESS_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class History:
    """Per-epoch record of a run. Index 0 is before training (``train_loss`` is NaN there).

    Attributes
    ----------
    epoch : list of int
        0, 1, ..., epochs.
    train_loss : list of float
        The mean training loss over the epoch's mini-batches (weighted by their sizes), in nats.
    val_kl : list of float
        Mean KL(p_reference ‖ p_model) at T = 1 on the validation split, in nats (NaN without a reference).
    val_accuracy : list of float
        Accuracy on the validation labels.
    val_agreement : list of float
        Share of validation examples where the model's top class is the reference's (NaN without one).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_kl: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_agreement: list[float] = field(default_factory=list)

    def append(self, epoch: int, train_loss: float, metrics: dict[str, float]) -> None:
        """Record one epoch; ``metrics`` has the keys ``kl``, ``accuracy`` and ``agreement``."""
        self.epoch.append(epoch)
        self.train_loss.append(train_loss)
        self.val_kl.append(metrics["kl"])
        self.val_accuracy.append(metrics["accuracy"])
        self.val_agreement.append(metrics["agreement"])

    def as_dict(self) -> dict[str, list]:
        """The five lists by name."""
        return asdict(self)

    def last(self) -> dict[str, float]:
        """The final epoch's values."""
        return {name: values[-1] for name, values in self.as_dict().items()}

    def __len__(self) -> int:
        return len(self.epoch)


Reference = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def _logits(model: Reference, X: torch.Tensor) -> torch.Tensor:
    if isinstance(model, nn.Module):
        was_training = model.training
        model.eval()
        out = model(X)
        model.train(was_training)
        return out
    return model(X)


@torch.no_grad()
def _metrics_tensors(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, reference_logits: torch.Tensor | None
) -> torch.Tensor:
    logits = _logits(model, X)
    predictions = logits.argmax(dim=-1)
    accuracy = (predictions == y).float().mean()
    if reference_logits is None:
        nan = torch.tensor(float("nan"), device=X.device)
        return torch.stack([nan, accuracy, nan])
    kl = distillation_loss(logits, reference_logits, temperature=1.0, check_finite=False)
    agreement = (predictions == reference_logits.argmax(dim=-1)).float().mean()
    return torch.stack([kl, accuracy, agreement])


def evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, reference: Reference | None = None
) -> dict[str, float]:
    """Accuracy on ``y`` and, given a reference (teacher), mean KL(p_ref ‖ p_model) and top-1 agreement.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``X`` to logits; evaluated in eval mode (its mode is restored afterwards).
    X : torch.Tensor
        ``(n, num_features)`` features.
    y : torch.Tensor
        ``(n,)`` labels.
    reference : nn.Module or callable, optional
        Maps ``X`` to reference logits (e.g. the teacher).

    Returns
    -------
    dict
        ``kl`` (mean KL(p_ref ‖ p_model) at T = 1, nats), ``accuracy`` and ``agreement`` (top-1);
        ``kl`` and ``agreement`` are NaN without a reference.
    """
    reference_logits = None if reference is None else _logits(reference, X)
    kl, accuracy, agreement = _metrics_tensors(model, X, y, reference_logits).tolist()
    return {"kl": kl, "accuracy": accuracy, "agreement": agreement}


def _check_loop_arguments(epochs, lr, batch_size, seed) -> tuple[int, float, int, int]:
    """The scalar arguments both loops share, validated."""
    return (
        check_scalar(epochs, "epochs", int, min_val=0),
        check_scalar(lr, "lr", float, min_val=0, include_boundaries="neither"),
        check_scalar(batch_size, "batch_size", int, min_val=1),
        check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED),
    )


def _run(
    model: nn.Module,
    data: DataSplits,
    training_tensors: tuple[torch.Tensor, ...],
    batch_loss: Callable[..., torch.Tensor],
    epochs: int,
    lr: float,
    batch_size: int,
    reference_val_logits: torch.Tensor | None,
    seed: int,
    progress: bool | None,
    description: str,
) -> History:
    """Shared loop: Adam on ``batch_loss(*batch)``; one host sync per epoch.

    ``training_tensors`` (features first) are shuffled together once per epoch; each step then takes
    contiguous slices of them, which are views, not copies. The arguments are already validated.
    """
    device = data.X_train.device
    # The fused Adam kernel updates all parameters in one call (CPU and CUDA); same maths.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))
    generator = torch.Generator().manual_seed(seed)
    n = training_tensors[0].shape[0]
    starts = range(0, n, batch_size)
    batch_weights = torch.tensor([min(batch_size, n - start) / n for start in starts], device=device)
    history = History()
    initial = _metrics_tensors(model, data.X_val, data.y_val, reference_val_logits).tolist()
    history.append(0, math.nan, dict(zip(("kl", "accuracy", "agreement"), initial)))
    bar = tqdm(range(1, epochs + 1), desc=description, disable=not progress_enabled(progress), leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        shuffled = [tensor[order] for tensor in training_tensors]
        losses = []
        for start in starts:
            loss = batch_loss(*[tensor[start : start + batch_size] for tensor in shuffled])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        mean_loss = (torch.stack(losses) * batch_weights).sum()
        metrics = _metrics_tensors(model, data.X_val, data.y_val, reference_val_logits)
        values = torch.cat([mean_loss.reshape(1), metrics]).tolist()  # the epoch's one host sync
        history.append(epoch, values[0], dict(zip(("kl", "accuracy", "agreement"), values[1:])))
        bar.set_postfix(loss=f"{values[0]:.3f}", val_kl=f"{values[1]:.3f}", val_acc=f"{values[2]:.3f}")
    bar.close()
    model.eval()
    return history


def _prepare(model: nn.Module, data: DataSplits, device: torch.device | str | None):
    device = torch.device(device) if device is not None else pick_device()
    return model.to(device), data.to(device), device


def train(
    model: nn.Module,
    data: DataSplits,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    reference: Reference | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    seed: int = 0,
) -> History:
    """Train ``model`` on the true labels with cross-entropy (Adam), in place.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(batch, num_features)`` features to logits.
    data : DataSplits
        Trained on ``X_train, y_train``; measured on ``X_val, y_val``.
    epochs : int, default=30
        Passes over the training split, >= 0.
    lr : float, default=3e-3
        Adam's learning rate, > 0.
    batch_size : int, default=64
        Mini-batch size, >= 1 (the last batch of an epoch may be smaller).
    reference : nn.Module or callable, optional
        Only measured against (e.g. a teacher): the history's ``val_kl`` and ``val_agreement`` compare
        the model to it.
    device : torch.device or str, optional
        Where to train; default :func:`~kdcourse.device.pick_device`.
    progress : bool, optional
        Show a progress bar; see :func:`progress_enabled`.
    seed : int, default=0
        Seeds the shuffling, in ``[0, 2**32 - 1]``.

    Returns
    -------
    History
        Entry 0 before training, then one entry per epoch.

    Raises
    ------
    TypeError
        If ``epochs``, ``batch_size`` or ``seed`` is not an int, or ``lr`` not a real number.
    ValueError
        If one of them is out of range.
    """
    epochs, lr, batch_size, seed = _check_loop_arguments(epochs, lr, batch_size, seed)
    model, data, device = _prepare(model, data, device)
    if isinstance(reference, nn.Module):
        reference = reference.to(device)
    reference_val = None if reference is None else _logits(reference, data.X_val)

    def batch_loss(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(X), y)

    return _run(model, data, (data.X_train, data.y_train), batch_loss, epochs, lr, batch_size,
                reference_val, seed, progress, "train")


def distill(
    student: nn.Module,
    teacher: Reference,
    data: DataSplits,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    temperature: float = 4.0,
    alpha: float = 0.0,
    direction: str = "forward",
    device: torch.device | str | None = None,
    progress: bool | None = None,
    seed: int = 0,
) -> History:
    r"""Distil ``teacher`` into ``student`` (trained in place; the teacher is never updated).

    Per mini-batch the loss is

    .. math:: \alpha\,\mathrm{CE}(y, p_s) + (1-\alpha)\,T^2\,\mathrm{KL}(p_t^T \,\|\, p_s^T)

    for ``direction="forward"`` (``alpha=0`` by default: pure distillation, labels unused), or the same
    with :math:`\mathrm{KL}(p_s^T \,\|\, p_t^T)` for ``direction="reverse"``: exactly
    :func:`kdcourse.losses.combined_loss_from_log_probs`, with the frozen teacher's tempered
    log-probabilities computed once per run. The history's ``train_loss`` is that objective's epoch
    mean (nats).

    Parameters
    ----------
    student : torch.nn.Module
        Maps features to logits; trained in place.
    teacher : nn.Module or callable
        Maps features to logits; its logits are computed once, without gradient.
    data : DataSplits
        Trained on ``X_train`` (and ``y_train`` when ``alpha > 0``); measured on the validation split.
    epochs, lr, batch_size, device, progress, seed
        As for :func:`train`.
    temperature : float, default=4.0
        :math:`T > 0` of the soft term.
    alpha : float, default=0.0
        Weight of the hard-label cross-entropy, in [0, 1].
    direction : {"forward", "reverse"}, default="forward"
        KL(teacher ‖ student) or KL(student ‖ teacher).

    Returns
    -------
    History
        ``val_kl`` and ``val_agreement`` compare the student with the teacher.

    Raises
    ------
    TypeError
        If a scalar argument has the wrong type.
    ValueError
        If a scalar argument is out of range or ``direction`` is unknown.
    """
    check_choice(direction, DIRECTIONS, "direction")
    alpha = check_scalar(alpha, "alpha", float, min_val=0, max_val=1)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    epochs, lr, batch_size, seed = _check_loop_arguments(epochs, lr, batch_size, seed)
    student, data, device = _prepare(student, data, device)
    if isinstance(teacher, nn.Module):
        teacher = teacher.to(device)
    # The teacher is frozen: its tempered distribution is computed once, not every step.
    teacher_log_probs = F.log_softmax(_logits(teacher, data.X_train).detach() / temperature, dim=-1)
    teacher_val = _logits(teacher, data.X_val).detach()

    def batch_loss(X: torch.Tensor, y: torch.Tensor, log_p_teacher: torch.Tensor) -> torch.Tensor:
        return combined_loss_from_log_probs(student(X), y, log_p_teacher, alpha, temperature, direction)

    tensors = (data.X_train, data.y_train, teacher_log_probs)
    return _run(student, data, tensors, batch_loss, epochs, lr, batch_size, teacher_val, seed, progress,
                "distill")
