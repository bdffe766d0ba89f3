"""A short end-to-end distillation run: teacher, student from scratch, distilled student.

Used by ``kdcourse distill-demo`` and the course demo; prints a results table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from kdcourse import data as datasets
from kdcourse import models, training
from kdcourse.device import describe_device, pick_device


@dataclass(frozen=True)
class ResultRow:
    name: str
    parameters: int
    test_accuracy: float
    test_kl_to_teacher: float
    test_agreement: float
    seconds: float


def run_distillation_demo(
    seed: int = 0, epochs: int = 25, temperature: float = 4.0, alpha: float = 0.5, progress: bool | None = None
) -> list[ResultRow]:
    """Train a teacher on digits, a narrow student on labels, and the same student distilled.

    The distilled student minimises ``alpha·CE + (1-alpha)·T²·KL(p_t^T ‖ p_s^T)``. Returns one row per
    model with test accuracy, mean test KL(teacher ‖ model) in nats and top-1 agreement.
    """
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
    """The results as a fixed-width text table."""
    header = f"{'model':<34} {'params':>7} {'test acc':>9} {'KL(t‖m)':>9} {'agree':>7} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.name:<34} {row.parameters:>7d} {row.test_accuracy:>9.3f} "
                     f"{row.test_kl_to_teacher:>9.3f} {row.test_agreement:>7.3f} {row.seconds:>8.2f}")
    return "\n".join(lines)


def main(progress: bool | None = None) -> int:
    torch.set_num_threads(1)
    print(describe_device())
    print("Data: scikit-learn digits (bundled), 60/20/20 split; KL in nats on the test split.")
    print(format_table(run_distillation_demo(progress=progress)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
