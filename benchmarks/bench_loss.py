#!/usr/bin/env python
"""Speed and peak memory of ``kdcourse.distillation_loss`` against the usual ``F.kl_div`` expression.

Compared, forward and backward (gradient with respect to the student logits), on CPU:

* ``kdcourse.distillation_loss(z, v, T)`` as a user calls it (default arguments, so it also checks
  that the logits are finite);
* ``F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction="batchmean") * T**2``;
* ``kdcourse.distillation_loss(z, v, T, check_finite=False)``, as the training loops call it
  (a diagnostic row: it shows what the finiteness check costs).

Shapes: batch 4096 x 10 classes and batch 512 x 32,000 classes (float32, temperature 4 unless
``--temperature``). Each round times a block of calls of every variant, rotating the order from
round to round; the table reports the median time per call and the median of the per-round ratios
to the ``F.kl_div`` expression.

Peak memory is measured for each variant in a fresh Python process (so nothing left over from
other variants counts), after one untimed warm-up call, in two ways:

* ``tensor MiB``: the largest amount of tensor memory the call allocated above what was live when
  it started, from the allocation/free events that ``torch.profiler`` records with
  ``profile_memory=True``. Exact and independent of the C allocator; this is the number to compare.
* ``RSS MiB``: growth of the process's resident set, peak during the call minus the value just
  before it. The peak is read from ``VmHWM`` in ``/proc/self/status`` after resetting it with
  ``/proc/self/clear_refs`` (Linux only; "n/a" elsewhere). The child runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so glibc serves every block of 64 KiB or more with its own
  ``mmap`` and returns it on free; otherwise freed heap memory would be reused without showing up.

The gradient of the student logits (one batch x classes tensor) is part of both numbers.
Values and gradients of the variants are also compared with each other and with a float64
evaluation.

Run: ``python benchmarks/bench_loss.py`` (1-2 minutes on 2 cores) or ``--quick`` (under a minute).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from kdcourse.losses import distillation_loss

from machine import machine_lines  # benchmarks/machine.py, beside this script
from memory import CHILD_ENVIRONMENT, rss_peak_bytes, tensor_peak_bytes  # benchmarks/memory.py

GOAL_RATIO = 1.1
CASES = ((4096, 10), (512, 32000))
REFERENCE = "F.kl_div expression"
KDCOURSE = "kdcourse.distillation_loss"


def kl_div_expression(z: torch.Tensor, v: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.kl_div(F.log_softmax(z / temperature, -1), F.softmax(v / temperature, -1),
                    reduction="batchmean") * temperature**2


VARIANTS = {
    KDCOURSE: lambda z, v, t: distillation_loss(z, v, t),
    REFERENCE: kl_div_expression,
    "  (check_finite=False)": lambda z, v, t: distillation_loss(z, v, t, check_finite=False),
}


def make_inputs(batch: int, classes: int):
    """float32 student and teacher logits with a spread of about 3 (deterministic)."""
    generator = torch.Generator().manual_seed(batch * 100_003 + classes)
    student = torch.randn(batch, classes, generator=generator).mul_(3.0)
    teacher = torch.randn(batch, classes, generator=generator).mul_(3.0)
    return student.requires_grad_(True), teacher


def forward_backward(fn, z: torch.Tensor, v: torch.Tensor, temperature: float) -> torch.Tensor:
    z.grad = None
    loss = fn(z, v, temperature)
    loss.backward()
    return loss.detach()


# ----------------------------------------------------------------------------- memory (child process)

def memory_child(batch: int, classes: int, variant: str, temperature: float) -> None:
    """Runs in a fresh process; prints one JSON line with the measured peaks in bytes."""
    fn = VARIANTS[variant]
    z, v = make_inputs(batch, classes)
    forward_backward(fn, z, v, temperature)  # warm-up: one-time allocations do not count
    z.grad = None
    gc.collect()

    rss_peak = rss_peak_bytes(lambda: forward_backward(fn, z, v, temperature))
    z.grad = None
    gc.collect()
    peak, live = tensor_peak_bytes(lambda: forward_backward(fn, z, v, temperature))
    print(json.dumps({"tensor_peak": peak, "tensor_retained": live, "rss_peak": rss_peak}))


def measure_memory(batch: int, classes: int, variant: str, temperature: float, threads: int) -> dict:
    env = dict(os.environ, **CHILD_ENVIRONMENT, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, os.path.abspath(__file__), "--threads", str(threads),
               "--temperature", str(temperature), "--memory-child", str(batch), str(classes), variant]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory measurement of {variant!r} at {batch}x{classes} failed:\n"
                           f"{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- timing and checks

def check_values(batch: int, classes: int, temperature: float) -> dict:
    """Largest relative differences of loss values and gradients between the variants and float64."""
    z, v = make_inputs(batch, classes)
    z64, v64 = z.detach().double().requires_grad_(True), v.double()
    exact = forward_backward(kl_div_expression, z64, v64, temperature).item()
    exact_grad = z64.grad
    del z64, v64
    results = {}
    for name, fn in VARIANTS.items():
        value = forward_backward(fn, z, v, temperature).item()
        grad_error = ((z.grad.double() - exact_grad).abs().max() / exact_grad.abs().max()).item()
        results[name] = {"value": value, "value_rel_error": abs(value - exact) / abs(exact),
                         "grad_rel_error": grad_error, "grad": z.grad.clone()}
    kd, ref = results[KDCOURSE], results[REFERENCE]
    between = {
        "value": abs(kd["value"] - ref["value"]) / abs(ref["value"]),
        "grad": ((kd["grad"] - ref["grad"]).abs().max() / ref["grad"].abs().max()).item(),
    }
    for result in results.values():
        del result["grad"]
    return {"exact": exact, "variants": results, "between": between}


def time_case(batch: int, classes: int, temperature: float, rounds: int, block_s: float) -> dict:
    z, v = make_inputs(batch, classes)
    names = list(VARIANTS)
    for fn in VARIANTS.values():  # warm-up
        forward_backward(fn, z, v, temperature)
    start = time.perf_counter()
    forward_backward(VARIANTS[REFERENCE], z, v, temperature)
    calls = max(1, round(block_s / max(time.perf_counter() - start, 1e-6)))
    per_call = {name: [] for name in names}
    cpu_per_call = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            fn = VARIANTS[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                forward_backward(fn, z, v, temperature)
            per_call[name].append((time.perf_counter() - start) / calls)
            cpu_per_call[name].append((time.process_time() - start_cpu) / calls)
        print(f"  [{batch}x{classes}] round {round_index + 1}/{rounds}", file=sys.stderr, flush=True)
    def paired(samples):
        return {name: [a / b for a, b in zip(samples[name], samples[REFERENCE])] for name in names}

    return {"calls": calls, "per_call": per_call, "ratios": paired(per_call),
            "cpu_ratios": paired(cpu_per_call)}


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 shorter rounds; memory of the two compared variants only")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--memory-child", nargs=3, metavar=("BATCH", "CLASSES", "VARIANT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.memory_child:
        batch, classes, variant = args.memory_child
        memory_child(int(batch), int(classes), variant, args.temperature)
        return

    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 7)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    block_s = 0.05 if args.quick else 0.15
    print("kdcourse.distillation_loss vs the F.kl_div expression: forward + backward (CPU, float32)")
    for line in machine_lines(args.threads):
        print(line)
    print(f"config  : T = {args.temperature}; {rounds} rounds, order rotated each round; "
          f"memory in a fresh process per variant (see the module docstring)")
    print()

    started = time.perf_counter()
    rows = []
    for batch, classes in CASES:
        timing = time_case(batch, classes, args.temperature, rounds, block_s)
        values = check_values(batch, classes, args.temperature)
        memory = {}
        if not args.no_memory:
            # --quick measures the memory of the two compared variants only.
            for name in (list(VARIANTS)[:2] if args.quick else VARIANTS):
                memory[name] = measure_memory(batch, classes, name, args.temperature, args.threads)
        rows.append((batch, classes, timing, values, memory))

    mib = 2.0**20
    header = (f"{'shape':<11} {'variant':<27} {'time/call':>11} {'ratio to kl_div [min-max]':>26} "
              f"{'CPU ratio':>9} "
              f"{'tensor MiB':>11} {'RSS MiB':>8} {'loss':>10} {'rel err':>8} {'grad err':>8}")
    print(header)
    print("-" * len(header))
    for batch, classes, timing, values, memory in rows:
        shape = f"{batch}x{classes}"
        logits_mib = batch * classes * 4 / mib
        for name in VARIANTS:
            ratios = timing["ratios"][name]
            ratio = f"{statistics.median(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]"
            mem = memory.get(name)
            tensor = f"{mem['tensor_peak'] / mib:.1f}" if mem else "-"
            rss = "-" if not mem else "n/a" if mem["rss_peak"] is None else f"{mem['rss_peak'] / mib:.1f}"
            check = values["variants"][name]
            print(f"{shape:<11} {name:<27} {fmt_time(statistics.median(timing['per_call'][name])):>11} "
                  f"{ratio:>26} {statistics.median(timing['cpu_ratios'][name]):>9.3f} "
                  f"{tensor:>11} {rss:>8} {check['value']:>10.5f} "
                  f"{check['value_rel_error']:>8.1e} {check['grad_rel_error']:>8.1e}")
        wall_ratio = statistics.median(timing["ratios"][KDCOURSE])
        cpu_ratio = statistics.median(timing["cpu_ratios"][KDCOURSE])
        # With one thread, CPU time leaves out waiting for a busy core; with more it sums threads.
        kd_ratio, basis = (cpu_ratio, "CPU") if torch.get_num_threads() == 1 else (wall_ratio, "wall")
        verdict = "meets" if kd_ratio <= GOAL_RATIO else "ABOVE"
        same = values["between"]["value"] < 1e-4 and values["between"]["grad"] < 1e-4
        line = (f"{'':<11} time ratio kdcourse / kl_div: wall {wall_ratio:.3f}, CPU {cpu_ratio:.3f} -> "
                f"{verdict} the goal of <= {GOAL_RATIO} (on {basis} time); same value: {'yes' if same else 'NO'} "
                f"(loss rel diff {values['between']['value']:.1e}, grad rel diff {values['between']['grad']:.1e})")
        print(line)
        if memory:
            kd_mem = memory[KDCOURSE]["tensor_peak"] / mib
            ref_mem = memory[REFERENCE]["tensor_peak"] / mib
            print(f"{'':<11} peak tensor memory kdcourse / kl_div {kd_mem / ref_mem:.2f} "
                  f"({kd_mem / logits_mib:.1f} vs {ref_mem / logits_mib:.1f} logits-sized tensors "
                  f"of {logits_mib:.2f} MiB); {timing['calls']} calls per timed block")
        print()
    print("time/call: wall time, median over rounds; ratio: median of per-round ratios of wall time to the")
    print("F.kl_div expression (CPU ratio: the same with process CPU time, less sensitive to other load);")
    print("rel err / grad err: relative to a float64 evaluation (gradient: max abs error / max abs value).")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          f"(Linux units); total wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
