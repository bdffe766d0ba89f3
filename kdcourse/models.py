"""Small multilayer perceptrons for teachers and students."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from kdcourse._validation import check_scalar

__all__ = ["make_mlp", "make_teacher", "make_student", "count_parameters"]


def make_mlp(
    in_features: int,
    num_classes: int,
    hidden: Sequence[int] = (64,),
    dropout: float = 0.0,
) -> nn.Sequential:
    """An MLP ``in_features → hidden[0] → … → num_classes`` with ReLU and optional dropout.

    Parameters
    ----------
    in_features : int
        Input width, >= 1.
    num_classes : int
        Output width (logits), >= 1.
    hidden : sequence of int, default=(64,)
        Hidden widths, each >= 1; ``()`` gives a linear (softmax-regression) model.
    dropout : float, default=0.0
        Dropout probability after each hidden ReLU, in [0, 1).

    Returns
    -------
    torch.nn.Sequential
        Outputs raw logits.

    Raises
    ------
    TypeError
        If a size is not an int or ``dropout`` not a real number.
    ValueError
        If a size is < 1 or ``dropout`` is outside [0, 1).
    """
    in_features = check_scalar(in_features, "in_features", int, min_val=1)
    num_classes = check_scalar(num_classes, "num_classes", int, min_val=1)
    widths = [check_scalar(width, f"hidden[{i}]", int, min_val=1) for i, width in enumerate(hidden)]
    dropout = check_scalar(dropout, "dropout", float, min_val=0, max_val=1, include_boundaries="left")
    sizes = [in_features, *widths, num_classes]
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(width_in, width_out))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def make_teacher(in_features: int, num_classes: int) -> nn.Sequential:
    """A wide two-hidden-layer teacher (256, 256) with dropout 0.1; see :func:`make_mlp`."""
    return make_mlp(in_features, num_classes, hidden=(256, 256), dropout=0.1)


def make_student(in_features: int, num_classes: int, width: int = 16) -> nn.Sequential:
    """A narrow one-hidden-layer student; see :func:`make_mlp`.

    Parameters
    ----------
    in_features, num_classes : int
        As for :func:`make_mlp`.
    width : int, default=16
        The hidden layer's width, >= 1.

    Raises
    ------
    TypeError, ValueError
        As :func:`make_mlp`, naming ``width``.
    """
    width = check_scalar(width, "width", int, min_val=1)
    return make_mlp(in_features, num_classes, hidden=(width,))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
