"""A short end-to-end distillation run: teacher, student from scratch, distilled student.

Run it with ``python -m kdcourse.quickstart``: it trains on scikit-learn's bundled digits (on the
device :func:`kdcourse.device.pick_device` chooses) and prints a results table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from kdcourse import data as datasets
from kdcourse import models, training
from kdcourse._validation import MAX_SEED, check_scalar
from kdcourse.device import describe_device, pick_device

__all__ = ["ResultRow", "run_distillation_demo", "format_table", "main"]


@dataclass(frozen=True)
class ResultRow:
    """One model's line of the results table.

    Attributes
    ----------
    name : str
        What the model is.
    parameters : int
        Trainable parameters.
    test_accuracy : float
        Accuracy on the test split.
    test_kl_to_teacher : float
        Mean KL(p_teacher ‖ p_model) on the test split at T = 1, nats.
    test_agreement : float
        Share of test examples where the model's top class is the teacher's.
    seconds : float
        Wall time of its training.
    """

    name: str
    parameters: int
    test_accuracy: float
    test_kl_to_teacher: float
    test_agreement: float
    seconds: float


def run_distillation_demo(
    seed: int = 0, epochs: int = 25, temperature: float = 4.0, alpha: float = 0.5, progress: bool | None = None
) -> list[ResultRow]:
    r"""Train a teacher on digits, a narrow student on labels, and the same student distilled.

    The distilled student minimises :math:`\alpha\,\mathrm{CE} + (1-\alpha)\,T^2\,\mathrm{KL}(p_t^T \| p_s^T)`
    from the same initial weights as the student trained on labels.

    Parameters
    ----------
    seed : int, default=0
        Seeds the split, the initialisations and the shuffling, in ``[0, 2**32 - 2]``.
    epochs : int, default=25
        Epochs of each of the three trainings, >= 0.
    temperature : float, default=4.0
        :math:`T > 0` of the distillation.
    alpha : float, default=0.5
        Weight of the hard-label cross-entropy, in [0, 1].
    progress : bool, optional
        Show progress bars; see :func:`kdcourse.training.progress_enabled`.

    Returns
    -------
    list of ResultRow
        The teacher, the student trained on labels, the distilled student.

    Raises
    ------
    TypeError, ValueError
        For a bad scalar argument, before anything is trained.
    """
    epochs = check_scalar(epochs, "epochs", int, min_val=0)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    alpha = check_scalar(alpha, "alpha", float, min_val=0, max_val=1)
    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED - 1)  # the students use seed + 1
    device = pick_device()
    splits = datasets.load_digits_splits(seed=seed).to(device)
    rows = []

    def measure(name: str, model: torch.nn.Module, started: float, teacher: torch.nn.Module | None) -> None:
        result = training.evaluate(model, splits.X_test, splits.y_test, reference=teacher)
        rows.append(ResultRow(name, models.count_parameters(model), result["accuracy"], result["kl"],
                              result["agreement"], time.perf_counter() - started))

    training.seed_everything(seed)
    teacher = models.make_teacher(splits.num_features, splits.num_classes)
    started = time.perf_counter()
    training.train(teacher, splits, epochs=epochs, device=device, progress=progress, seed=seed)
    measure("teacher (256-256 MLP)", teacher, started, teacher)

    training.seed_everything(seed + 1)
    scratch = models.make_student(splits.num_features, splits.num_classes, width=8)
    initial_state = {k: v.clone() for k, v in scratch.state_dict().items()}
    started = time.perf_counter()
    training.train(scratch, splits, epochs=epochs, lr=1e-2, device=device, progress=progress, seed=seed)
    measure("student, labels only (8 units)", scratch, started, teacher)

    distilled = models.make_student(splits.num_features, splits.num_classes, width=8)
    distilled.load_state_dict(initial_state)  # same start as the scratch student
    started = time.perf_counter()
    training.distill(distilled, teacher, splits, epochs=epochs, lr=1e-2, temperature=temperature,
                     alpha=alpha, device=device, progress=progress, seed=seed)
    measure(f"student, distilled (T={temperature:g}, α={alpha:g})", distilled, started, teacher)
    return rows


def format_table(rows: list[ResultRow]) -> str:
    """The results as a text table (:func:`kdcourse.tables.format_table`): a header, a rule, one line per row."""
    from kdcourse.tables import format_table as table

    return table(["model", "params", "test acc", "KL(t‖m)", "agree", "seconds"],
                 [[r.name, r.parameters, f"{r.test_accuracy:.3f}", f"{r.test_kl_to_teacher:.3f}",
                   f"{r.test_agreement:.3f}", f"{r.seconds:.2f}"] for r in rows], align="lrrrrr")


def main(progress: bool | None = None, epochs: int = 25, seed: int = 0) -> int:
    """Print the device, the data and the table of :func:`run_distillation_demo`; return 0.

    Parameters
    ----------
    progress : bool, optional
        Show progress bars.
    epochs : int, default=25
        Epochs of each training (a test uses 1 or 2).
    seed : int, default=0
        As for :func:`run_distillation_demo`.

    Returns
    -------
    int
        0, the exit status.
    """
    torch.set_num_threads(1)
    print(describe_device())
    print("Data: scikit-learn digits (bundled), 60/20/20 split; KL in nats on the test split.")
    print(format_table(run_distillation_demo(seed=seed, epochs=epochs, progress=progress)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
