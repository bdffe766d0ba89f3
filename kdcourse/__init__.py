"""kdcourse: a graded course workbook on knowledge distillation with the KL-divergence loss.

The distillation loss is :math:`L_{KD}(\\theta) = \\mathrm{KL}(p_t(\\cdot|x) \\,\\|\\, p_\\theta(\\cdot|x))`.

``import kdcourse`` is cheap: the names below are loaded from their modules on first use
(PEP 562), so a command that only reads files never imports torch, scikit-learn, scipy or matplotlib.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Where each top-level name lives.
_EXPORTS = {
    "entropy": "kdcourse.divergences",
    "cross_entropy": "kdcourse.divergences",
    "kl_divergence": "kdcourse.divergences",
    "js_divergence": "kdcourse.divergences",
    "softmax": "kdcourse.divergences",
    "log_softmax": "kdcourse.divergences",
    "distillation_loss": "kdcourse.losses",
    "combined_loss": "kdcourse.losses",
    "token_distillation_loss": "kdcourse.token_losses",
    "fused_linear_distillation_loss": "kdcourse.token_losses",
    "pick_device": "kdcourse.device",
    "describe_device": "kdcourse.device",
    "seed_everything": "kdcourse.training",
    "train": "kdcourse.training",
    "distill": "kdcourse.training",
    "evaluate": "kdcourse.training",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kdcourse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
