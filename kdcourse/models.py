"""Small multilayer perceptrons for teachers and students."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["make_mlp", "make_teacher", "make_student", "count_parameters"]


def make_mlp(
    in_features: int,
    num_classes: int,
    hidden: Sequence[int] = (64,),
    dropout: float = 0.0,
) -> nn.Sequential:
    """An MLP ``in_features → hidden[0] → … → num_classes`` with ReLU and optional dropout.

    ``hidden=()`` gives a linear (softmax-regression) model. The output is raw logits.

    Raises:
        ValueError: non-positive sizes or ``dropout`` outside [0, 1).
    """
    sizes = [in_features, *hidden, num_classes]
    if any((not isinstance(size, int)) or size <= 0 for size in sizes):
        raise ValueError(f"layer sizes must be positive integers (got {sizes})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(width_in, width_out))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def make_teacher(in_features: int, num_classes: int) -> nn.Sequential:
    """A wide two-hidden-layer teacher (256, 256) with a little dropout."""
    return make_mlp(in_features, num_classes, hidden=(256, 256), dropout=0.1)


def make_student(in_features: int, num_classes: int, width: int = 16) -> nn.Sequential:
    """A narrow one-hidden-layer student."""
    return make_mlp(in_features, num_classes, hidden=(width,))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
