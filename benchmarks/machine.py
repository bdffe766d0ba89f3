"""The machine a benchmark ran on, printed above its table: CPU, cores, load, software, threads."""

from __future__ import annotations

import os
import platform

import torch

import kdcourse


def machine_lines(threads: int) -> list[str]:
    """Three lines: the CPU and its load, the software versions, and torch's thread settings."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    cpu_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu_name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"machine : {cpu_name}; {os.cpu_count()} logical cores ({usable} usable); load average {load}",
        f"software: python {platform.python_version()}, torch {torch.__version__}, kdcourse {kdcourse.__version__}",
        f"threads : torch.get_num_threads() = {torch.get_num_threads()} (asked for {threads}), "
        f"interop = {torch.get_num_interop_threads()}",
    ]
