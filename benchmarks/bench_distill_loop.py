#!/usr/bin/env python
"""Speed of ``kdcourse.training.distill`` against a distillation loop written the textbook way.

The reference ("DataLoader") loop is what most tutorials show: a ``torch.utils.data.DataLoader``
over a ``TensorDataset`` with ``shuffle=True``, the teacher run under ``torch.no_grad()`` on every
mini-batch, the soft-target loss
``F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction="batchmean") * T**2``,
``loss.item()`` accumulated every step, and a validation pass (KL to the teacher, accuracy,
agreement) at the end of each epoch, so both loops do the same bookkeeping.

Both variants get the same student architecture and initial weights, the same trained teacher,
epochs, batch size, Adam learning rate and temperature. Every round runs each variant once with a
fresh copy of the student, alternating which goes first; the table reports medians over rounds
and the median of the per-round time ratios. Final validation agreement with the teacher is
measured for both with the same function (``kdcourse.training.evaluate``); each round uses a
different seed (student initialisation and shuffling), so the spread over rounds is the
run-to-run noise the two loops should agree within.

Run: ``python benchmarks/bench_distill_loop.py`` (about 1-2 minutes on 2 cores) or with
``--quick`` (under a minute). ``--help`` lists the knobs. CPU only, by design.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from kdcourse.data import DataSplits, load_digits_splits, make_overlapping_classes
from kdcourse.losses import distillation_loss
from kdcourse.models import make_student, make_teacher
from kdcourse.training import distill, evaluate, seed_everything, train

from machine import machine_lines  # benchmarks/machine.py, beside this script

GOAL_RATIO = 3.0
DATASETS = {
    "digits": lambda: load_digits_splits(seed=0),
    "overlap": lambda: make_overlapping_classes(n_classes=5, n_features=10, n_samples=3000,
                                                overlap=1.0, seed=0),
}


def dataloader_distill(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    data: DataSplits,
    epochs: int,
    lr: float,
    batch_size: int,
    temperature: float,
    seed: int,
    loss_kind: str,
) -> list[float]:
    """The textbook loop. Returns the per-epoch training loss (kept so the work is not optimised away)."""
    loader = DataLoader(
        TensorDataset(data.X_train, data.y_train),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    losses = []
    for _ in range(epochs):
        student.train()
        running, seen = 0.0, 0
        for xb, _yb in loader:
            with torch.no_grad():
                teacher_logits = teacher(xb)
            student_logits = student(xb)
            if loss_kind == "kl_div":
                loss = F.kl_div(
                    F.log_softmax(student_logits / temperature, dim=-1),
                    F.softmax(teacher_logits / temperature, dim=-1),
                    reduction="batchmean",
                ) * temperature**2
            else:
                loss = distillation_loss(student_logits, teacher_logits, temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * xb.shape[0]
            seen += xb.shape[0]
        losses.append(running / seen)
        student.eval()
        with torch.no_grad():
            val_student = student(data.X_val)
            val_teacher = teacher(data.X_val)
            _val_kl = F.kl_div(F.log_softmax(val_student, -1), F.softmax(val_teacher, -1),
                               reduction="batchmean").item()
            _val_acc = (val_student.argmax(-1) == data.y_val).float().mean().item()
            _val_agree = (val_student.argmax(-1) == val_teacher.argmax(-1)).float().mean().item()
    student.eval()
    return losses


def median_range(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    data = DATASETS[name]()
    seed_everything(0)
    teacher = make_teacher(data.num_features, data.num_classes)
    train(teacher, data, epochs=args.teacher_epochs, lr=args.lr, batch_size=args.batch_size,
          device="cpu", progress=False, seed=0)
    teacher.eval()
    teacher_val = evaluate(teacher, data.X_val, data.y_val)["accuracy"]

    def run_kdcourse(student, seed):
        distill(student, teacher, data, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                temperature=args.temperature, alpha=0.0, device="cpu", progress=False, seed=seed)

    def run_dataloader(student, seed):
        dataloader_distill(student, teacher, data, args.epochs, args.lr, args.batch_size,
                           args.temperature, seed, args.reference_loss)

    variants = {"kdcourse.distill": run_kdcourse, "DataLoader loop": run_dataloader}
    times = {v: [] for v in variants}
    cpu_times = {v: [] for v in variants}
    agreement = {v: [] for v in variants}
    val_kl = {v: [] for v in variants}

    # One untimed warm-up of each variant (first-call allocations, lazy imports).
    for run in variants.values():
        seed_everything(999)
        run(make_student(data.num_features, data.num_classes, width=args.width), 999)

    order = list(variants)
    for round_index in range(args.rounds):
        seed_everything(round_index)
        initial = make_student(data.num_features, data.num_classes, width=args.width).state_dict()
        for variant in (order if round_index % 2 == 0 else order[::-1]):
            student = make_student(data.num_features, data.num_classes, width=args.width)
            student.load_state_dict(initial)
            start, start_cpu = time.perf_counter(), time.process_time()
            variants[variant](student, round_index)
            times[variant].append(time.perf_counter() - start)
            cpu_times[variant].append(time.process_time() - start_cpu)
            metrics = evaluate(student, data.X_val, data.y_val, reference=teacher)
            agreement[variant].append(metrics["agreement"])
            val_kl[variant].append(metrics["kl"])
        print(f"  [{name}] round {round_index + 1}/{args.rounds} "
              + ", ".join(f"{v} {times[v][-1]:.3f}s" for v in variants), file=sys.stderr, flush=True)

    def paired(samples):
        return [b / a for a, b in zip(samples["kdcourse.distill"], samples["DataLoader loop"])]

    return {"name": name, "sizes": data.sizes(), "teacher_val": teacher_val, "times": times,
            "cpu_times": cpu_times, "agreement": agreement, "val_kl": val_kl,
            "ratios": paired(times), "cpu_ratios": paired(cpu_times)}


def print_table(results: list[dict]) -> None:
    header = (f"{'dataset':<8} {'variant':<17} {'wall s/run: median [min-max]':>29} "
              f"{'CPU s/run':>10} {'val agreement: median [min-max]':>32} {'val KL':>7}")
    print(header)
    print("-" * len(header))
    for result in results:
        for variant, times in result["times"].items():
            print(f"{result['name']:<8} {variant:<17} {median_range(times, '.3f'):>29} "
                  f"{statistics.median(result['cpu_times'][variant]):>10.3f} "
                  f"{median_range(result['agreement'][variant], '.3f'):>32} "
                  f"{statistics.median(result['val_kl'][variant]):>7.4f}")
        wall = statistics.median(result["ratios"])
        cpu = statistics.median(result["cpu_ratios"])
        # With one thread, CPU time leaves out waiting for a busy core; with more it sums threads.
        judged, basis = (cpu, "CPU") if torch.get_num_threads() == 1 else (wall, "wall")
        verdict = "meets" if judged >= GOAL_RATIO else "BELOW"
        gap = (statistics.median(result["agreement"]["kdcourse.distill"])
               - statistics.median(result["agreement"]["DataLoader loop"]))
        sizes = result["sizes"]
        print(f"{result['name']:<8} speed-up = DataLoader time / kdcourse time (median of per-round "
              f"ratios): wall {wall:.2f}x [{min(result['ratios']):.2f}-{max(result['ratios']):.2f}], "
              f"CPU {cpu:.2f}x -> {verdict} the goal of >= {GOAL_RATIO:.0f}x (on {basis} time)")
        print(f"{'':<8} agreement gap (kdcourse - DataLoader, medians) {gap:+.3f}; "
              f"{sizes['train']} train / {sizes['val']} val examples; "
              f"teacher val accuracy {result['teacher_val']:.3f}")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of 10 epochs instead of 7 rounds of 30")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--datasets", default="digits,overlap",
                        help=f"comma-separated subset of {sorted(DATASETS)} (default both)")
    parser.add_argument("--epochs", type=int, default=None, help="distillation epochs (default 30, quick 10)")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--width", type=int, default=16, help="student hidden width")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--reference-loss", choices=("kl_div", "kdcourse"), default="kl_div",
                        help="loss inside the DataLoader loop: the F.kl_div expression (default) "
                             "or kdcourse.distillation_loss")
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.epochs is None:
        args.epochs = 10 if args.quick else 30
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        parser.error(f"--datasets must name some of {sorted(DATASETS)} (got {args.datasets!r})")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    os.environ.setdefault("KDCOURSE_PROGRESS", "0")

    print("kdcourse.training.distill vs a DataLoader distillation loop (CPU)")
    for line in machine_lines(args.threads):
        print(line)
    print(f"config  : epochs {args.epochs}, batch {args.batch_size}, Adam lr {args.lr}, "
          f"T {args.temperature}, "
          f"alpha 0, student MLP width {args.width}, teacher MLP (256, 256); {args.rounds} rounds, "
          f"variants alternate order; DataLoader-loop loss = {args.reference_loss}")
    print()
    started = time.perf_counter()
    results = [run_dataset(name, args) for name in names]
    print_table(results)
    print(f"total wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
