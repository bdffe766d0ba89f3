"""kdcourse: a graded course workbook on knowledge distillation with the KL-divergence loss.

The distillation loss is :math:`L_{KD}(\\theta) = \\mathrm{KL}(p_t(\\cdot|x) \\,\\|\\, p_\\theta(\\cdot|x))`.
"""

__version__ = "0.1.0"

from kdcourse.divergences import cross_entropy, entropy, js_divergence, kl_divergence, log_softmax, softmax
from kdcourse.losses import combined_loss, distillation_loss
from kdcourse.device import describe_device, pick_device
from kdcourse.training import distill, evaluate, seed_everything, train

__all__ = [
    "__version__",
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "js_divergence",
    "softmax",
    "log_softmax",
    "distillation_loss",
    "combined_loss",
    "pick_device",
    "describe_device",
    "seed_everything",
    "train",
    "distill",
    "evaluate",
]
