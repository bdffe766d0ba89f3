"""Fixed, tiny teacher/student pairs on which a student's training step is observed.

The weights are drawn from numpy's generator (the same on every machine and torch version) and the
models are float64, so a step taken in the student's kernel and the reference step the judge takes
outside it can be compared to rounding. The kernel builds the scenario to run the student's step on it;
the judge builds the same scenario to compute what the step should have done.
"""

from __future__ import annotations

__all__ = ["TINY_SIZES", "tiny_scenario", "stale_gradients", "flat_parameters"]

#: inputs, teacher hidden units, student hidden units, classes, batch size
TINY_SIZES = (6, 10, 5, 4, 16)


def _linear(rng, n_in: int, n_out: int, scale: float):
    import torch
    from torch import nn

    layer = nn.Linear(n_in, n_out).double()
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(rng.normal(0.0, scale, size=(n_out, n_in))))
        layer.bias.copy_(torch.as_tensor(rng.normal(0.0, 0.1, size=n_out)))
    return layer


def tiny_scenario(seed: int):
    """``(teacher, student, (X, y))`` for ``seed``: two small ReLU networks (float64) and one batch.

    The teacher is in eval mode, the student in train mode.
    """
    import numpy as np
    import torch
    from torch import nn

    n_in, hidden_t, hidden_s, classes, batch = TINY_SIZES
    rng = np.random.default_rng(seed)
    teacher = nn.Sequential(_linear(rng, n_in, hidden_t, 0.9), nn.ReLU(), _linear(rng, hidden_t, classes, 1.2))
    student = nn.Sequential(_linear(rng, n_in, hidden_s, 0.5), nn.ReLU(), _linear(rng, hidden_s, classes, 0.5))
    X = torch.as_tensor(rng.normal(size=(batch, n_in)))
    y = torch.as_tensor(rng.integers(0, classes, size=batch), dtype=torch.int64)
    teacher.eval()
    student.train()
    return teacher, student, (X, y)


def stale_gradients(student, seed: int) -> list:
    """Gradients left over from an earlier step (drawn from ``seed + 1``), one per student parameter."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed + 1)
    return [torch.as_tensor(rng.normal(0.0, 0.5, size=tuple(p.shape))) for p in student.parameters()]


def flat_parameters(model):
    """All parameters of ``model`` as one detached float64 vector."""
    import torch

    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
