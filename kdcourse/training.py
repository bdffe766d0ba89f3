r"""Training on labels and distilling from a teacher, fast on a CPU for toy sizes.

Both loops keep the whole dataset on the device, draw mini-batches by indexing a shuffled
permutation, precompute the (frozen) teacher's logits once, and synchronise with the host only
once per epoch. They return a :class:`History` whose entry 0 is measured before any update.

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

from kdcourse._validation import check_alpha, check_choice, check_temperature
from kdcourse.data import DataSplits
from kdcourse.device import pick_device
from kdcourse.losses import DIRECTIONS, distillation_loss, kl_from_log_probs

__all__ = ["History", "seed_everything", "evaluate", "train", "distill", "progress_enabled"]

PROGRESS_ENV_VAR = "KDCOURSE_PROGRESS"


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, numpy's and torch's random number generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_enabled(progress: bool | None = None) -> bool:
    """Resolve the ``progress`` argument: ``None`` means on unless ``KDCOURSE_PROGRESS=0``."""
    if progress is not None:
        return bool(progress)
    return os.environ.get(PROGRESS_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class History:
    """Per-epoch record of a run. Index 0 is before training (``train_loss`` is NaN there)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_kl: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_agreement: list[float] = field(default_factory=list)

    def append(self, epoch: int, train_loss: float, metrics: dict[str, float]) -> None:
        self.epoch.append(epoch)
        self.train_loss.append(train_loss)
        self.val_kl.append(metrics["kl"])
        self.val_accuracy.append(metrics["accuracy"])
        self.val_agreement.append(metrics["agreement"])

    def as_dict(self) -> dict[str, list]:
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

    Returns a dict with keys ``kl``, ``accuracy``, ``agreement`` (NaN without a reference).
    """
    reference_logits = None if reference is None else _logits(reference, X)
    kl, accuracy, agreement = _metrics_tensors(model, X, y, reference_logits).tolist()
    return {"kl": kl, "accuracy": accuracy, "agreement": agreement}


def _check_run_arguments(epochs: int, lr: float, batch_size: int) -> None:
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer (got {epochs!r})")
    if not lr > 0:
        raise ValueError(f"lr must be > 0 (got {lr})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")


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
    loss_offset: float = 0.0,
) -> History:
    """Shared loop: Adam on ``batch_loss(*batch)``; one host sync per epoch.

    ``training_tensors`` (features first) are shuffled together once per epoch; each step then takes
    contiguous slices of them, which are views, not copies. ``loss_offset`` is a constant (it carries
    no gradient) added to the epoch's mean loss before it is recorded.
    """
    _check_run_arguments(epochs, lr, batch_size)
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
        mean_loss = (torch.stack(losses) * batch_weights).sum() + loss_offset
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
    """Train ``model`` on the true labels with cross-entropy (Adam).

    ``reference`` (e.g. a teacher) is only measured against: the history's ``val_kl`` and
    ``val_agreement`` compare the model to it. The model is trained in place on ``device``
    (default :func:`~kdcourse.device.pick_device`).
    """
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

    Per batch the loss is
    :math:`\alpha\,\mathrm{CE}(y, p_s) + (1-\alpha)\,T^2\,\mathrm{KL}(p_t^T \,\|\, p_s^T)` for
    ``direction="forward"`` (``alpha=0`` by default: pure distillation, labels unused), or the same
    with :math:`\mathrm{KL}(p_s^T \,\|\, p_t^T)` for ``direction="reverse"``. ``teacher`` is an
    ``nn.Module`` or any callable mapping features to logits; its logits are computed once.
    """
    check_choice(direction, DIRECTIONS, "direction")
    alpha = check_alpha(alpha)
    temperature = check_temperature(temperature)
    student, data, device = _prepare(student, data, device)
    if isinstance(teacher, nn.Module):
        teacher = teacher.to(device)
    # The teacher is frozen: its tempered distribution is computed once, not every step.
    teacher_log_probs = F.log_softmax(_logits(teacher, data.X_train).detach() / temperature, dim=-1)
    teacher_probs = teacher_log_probs.exp()
    teacher_val = _logits(teacher, data.X_val).detach()
    scale = temperature**2
    soft_weight = 1.0 - alpha
    offset = 0.0
    if direction == "forward":
        # KL(p_t ‖ p_s) = CE(p_t, p_s) − H(p_t). H(p_t) carries no gradient, so each step minimises the
        # soft-label cross-entropy (one fused kernel) and the epoch's mean loss gets −T²·mean H(p_t) back.
        teacher_entropy = -(teacher_probs * teacher_log_probs).sum(dim=-1).mean()
        offset = -soft_weight * scale * float(teacher_entropy)

    def soft_loss(student_logits: torch.Tensor, log_p_teacher: torch.Tensor, p_teacher: torch.Tensor
                  ) -> torch.Tensor:
        if direction == "forward":
            return scale * F.cross_entropy(student_logits / temperature, p_teacher)
        log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
        return scale * kl_from_log_probs(log_p_student, log_p_teacher, "reverse").mean()

    def batch_loss(X: torch.Tensor, y: torch.Tensor, log_p_teacher: torch.Tensor, p_teacher: torch.Tensor
                   ) -> torch.Tensor:
        student_logits = student(X)
        soft = soft_loss(student_logits, log_p_teacher, p_teacher)
        if alpha == 0:
            return soft
        return alpha * F.cross_entropy(student_logits, y) + soft_weight * soft

    tensors = (data.X_train, data.y_train, teacher_log_probs, teacher_probs)
    return _run(student, data, tensors, batch_loss, epochs, lr, batch_size, teacher_val, seed, progress,
                "distill", loss_offset=offset)
