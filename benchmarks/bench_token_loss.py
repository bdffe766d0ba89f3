#!/usr/bin/env python
"""Peak memory and time of ``kdcourse.fused_linear_distillation_loss`` against the naive token-level loss.

Compared, forward and backward (gradients for the student's hidden states and output matrix), float32:

* **naive**: the logits materialised, ``z = h_s @ W_s.T`` and ``v = h_t @ W_t.T`` (the teacher's under
  ``no_grad``), then ``kdcourse.token_distillation_loss(z, v, mask)`` (token mean, forward KL, T = 2);
* **fused**: ``kdcourse.fused_linear_distillation_loss(h_s, W_s, h_t, W_t, mask, chunk_size=1024)``, which
  never holds more than one chunk's logits.

Shapes: 4096 tokens × 32,000 vocabulary × d = 256, and 4096 × 64,000 × 256 (a larger vocabulary;
``--quick`` uses 2048 × 32,000 only). The fused peak scales with ``chunk_size`` / tokens: at 2048 tokens
the same chunk of 1024 holds half of them, and the ratio to naive is about twice as large. One token in eight is padding. Peak tensor memory is measured in a
fresh process per variant with ``torch.profiler`` (see ``benchmarks/memory.py``); it includes the
gradients the call leaves behind. Time: each round runs both variants, the order alternating; the table
gives medians and the median of the per-round ratios fused / naive. Goal: peak memory ≤ 25 % of naive and
time ≤ 1.5× naive. Loss values and gradients of the two are compared, too.

Run: ``python benchmarks/bench_token_loss.py`` (6-8 minutes on 2 cores, up to ~7 GiB of memory for the
naive variant at the larger vocabulary) or ``--quick`` (under a minute).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from kdcourse.token_losses import fused_linear_distillation_loss, token_distillation_loss

from machine import machine_lines  # benchmarks/machine.py, beside this script
from memory import CHILD_ENVIRONMENT, rss_peak_bytes, tensor_peak_bytes  # benchmarks/memory.py

CASES = ((4096, 32000, 256), (4096, 64000, 256))
QUICK_CASES = ((2048, 32000, 256),)
TEMPERATURE = 2.0
CHUNK_SIZE = 1024
GOAL_MEMORY, GOAL_TIME = 0.25, 1.5
VARIANTS = ("naive", "fused")


def make_inputs(tokens: int, vocab: int, width: int):
    """Student and teacher hidden states and output matrices (deterministic), and a mask with 1/8 padding."""
    generator = torch.Generator().manual_seed(tokens + vocab + width)
    student_hidden = torch.randn(tokens, width, generator=generator).requires_grad_(True)
    student_weight = (torch.randn(vocab, width, generator=generator) / width**0.5).requires_grad_(True)
    teacher_hidden = torch.randn(tokens, width, generator=generator)
    teacher_weight = torch.randn(vocab, width, generator=generator) * (2 / width**0.5)
    mask = torch.ones(tokens, dtype=torch.bool)
    mask[::8] = False
    return student_hidden, student_weight, teacher_hidden, teacher_weight, mask


def naive_loss(student_hidden, student_weight, teacher_hidden, teacher_weight, mask):
    student_logits = student_hidden @ student_weight.T
    with torch.no_grad():
        teacher_logits = teacher_hidden @ teacher_weight.T
    return token_distillation_loss(student_logits[None], teacher_logits[None], mask[None],
                                   temperature=TEMPERATURE, check_finite=False)


def fused_loss(student_hidden, student_weight, teacher_hidden, teacher_weight, mask):
    return fused_linear_distillation_loss(student_hidden, student_weight, teacher_hidden, teacher_weight, mask,
                                          temperature=TEMPERATURE, chunk_size=CHUNK_SIZE, check_finite=False)


LOSSES = {"naive": naive_loss, "fused": fused_loss}


def forward_backward(variant: str, inputs) -> torch.Tensor:
    student_hidden, student_weight = inputs[:2]
    student_hidden.grad = student_weight.grad = None
    loss = LOSSES[variant](*inputs)
    loss.backward()
    return loss.detach()


def memory_child(tokens: int, vocab: int, width: int, variant: str) -> None:
    """Runs in a fresh process; prints one JSON line with the peaks in bytes."""
    inputs = make_inputs(tokens, vocab, width)
    forward_backward(variant, inputs)  # warm-up
    gc.collect()
    rss = rss_peak_bytes(lambda: forward_backward(variant, inputs))
    gc.collect()
    peak, retained = tensor_peak_bytes(lambda: forward_backward(variant, inputs))
    print(json.dumps({"tensor_peak": peak, "tensor_retained": retained, "rss_peak": rss}))


def measure_memory(tokens: int, vocab: int, width: int, variant: str, threads: int) -> dict:
    env = dict(os.environ, **CHILD_ENVIRONMENT, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, os.path.abspath(__file__), "--threads", str(threads),
               "--memory-child", str(tokens), str(vocab), str(width), variant]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory of {variant} at {tokens}x{vocab}x{width} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def compare_values(inputs) -> dict:
    """Relative differences of the fused loss and gradients from the naive ones."""
    results = {}
    for variant in VARIANTS:
        loss = forward_backward(variant, inputs)
        results[variant] = (loss, inputs[0].grad.clone(), inputs[1].grad.clone())
    (naive_value, *naive_grads), (fused_value, *fused_grads) = results["naive"], results["fused"]

    def relative(a, b):
        return float((a - b).abs().max() / b.abs().max())

    return {"loss": float(naive_value), "loss_diff": abs(float(fused_value - naive_value)) / float(naive_value),
            "hidden_grad_diff": relative(fused_grads[0], naive_grads[0]),
            "weight_grad_diff": relative(fused_grads[1], naive_grads[1])}


def time_case(inputs, rounds: int) -> dict:
    for variant in VARIANTS:  # warm-up
        forward_backward(variant, inputs)
    wall = {variant: [] for variant in VARIANTS}
    cpu = {variant: [] for variant in VARIANTS}
    for round_index in range(rounds):
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            forward_backward(variant, inputs)
            wall[variant].append(time.perf_counter() - start)
            cpu[variant].append(time.process_time() - start_cpu)
        print(f"  round {round_index + 1}/{rounds}", file=sys.stderr, flush=True)
    return {"wall": wall, "ratios": [f / n for f, n in zip(wall["fused"], wall["naive"])],
            "cpu_ratios": [f / n for f, n in zip(cpu["fused"], cpu["naive"])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one smaller shape, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--memory-child", nargs=4, metavar=("TOKENS", "VOCAB", "WIDTH", "VARIANT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        tokens, vocab, width, variant = args.memory_child
        memory_child(int(tokens), int(vocab), int(width), variant)
        return

    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 5)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    print("fused_linear_distillation_loss vs naive logits + token_distillation_loss: forward + backward "
          "(CPU, float32)")
    for line in machine_lines(args.threads):
        print(line)
    print(f"config  : forward KL, T = {TEMPERATURE}, token mean, 1/8 padding, chunk_size = {CHUNK_SIZE}; "
          f"{rounds} rounds, order alternated; memory in a fresh process per variant")
    print()
    started = time.perf_counter()
    mib = 2.0**20
    header = (f"{'tokens x vocab x d':<20} {'variant':<7} {'time':>9} {'fused/naive [min-max]':>22} "
              f"{'CPU ratio':>9} {'tensor MiB':>11} {'RSS MiB':>8} {'vs naive':>8}")
    print(header)
    print("-" * len(header))
    for tokens, vocab, width in (QUICK_CASES if args.quick else CASES):
        inputs = make_inputs(tokens, vocab, width)
        timing = time_case(inputs, rounds)
        values = compare_values(inputs)
        del inputs
        gc.collect()
        memory = {variant: measure_memory(tokens, vocab, width, variant, args.threads) for variant in VARIANTS}
        shape = f"{tokens}x{vocab}x{width}"
        memory_ratio = memory["fused"]["tensor_peak"] / memory["naive"]["tensor_peak"]
        ratios = timing["ratios"]
        for variant in VARIANTS:
            mem = memory[variant]
            ratio = (f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
                     if variant == "fused" else "1")
            cpu_ratio = f"{statistics.median(timing['cpu_ratios']):.2f}" if variant == "fused" else "1"
            rss = "n/a" if mem["rss_peak"] is None else f"{mem['rss_peak'] / mib:.0f}"
            print(f"{shape:<20} {variant:<7} {statistics.median(timing['wall'][variant]):>8.2f}s {ratio:>22} "
                  f"{cpu_ratio:>9} {mem['tensor_peak'] / mib:>11.0f} {rss:>8} "
                  f"{mem['tensor_peak'] / memory['naive']['tensor_peak']:>8.2f}")
        logits_mib = tokens * vocab * 4 / mib
        time_ratio = statistics.median(ratios)
        print(f"{'':<20} memory fused/naive {memory_ratio:.2f} ({'meets' if memory_ratio <= GOAL_MEMORY else 'ABOVE'} "
              f"<= {GOAL_MEMORY}); time {time_ratio:.2f} ({'meets' if time_ratio <= GOAL_TIME else 'ABOVE'} "
              f"<= {GOAL_TIME}); one logits tensor is {logits_mib:.0f} MiB")
        print(f"{'':<20} loss {values['loss']:.5f}; fused vs naive: loss {values['loss_diff']:.1e}, "
              f"hidden grad {values['hidden_grad_diff']:.1e}, weight grad {values['weight_grad_diff']:.1e} "
              "(max abs difference / max abs value)")
        print()
    print("time: wall time of one forward + backward, median over rounds; fused/naive: median of the per-round")
    print("ratios of wall time (CPU ratio: the same with process CPU time); tensor MiB: peak tensor memory of the")
    print("call, gradients included; RSS MiB: peak growth of the resident set during the call.")
    print(f"total wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
