"""What the grading sandbox costs, side by side in one run (interleaved, medians; no assertion):

1. nbclient executing a tiny notebook (``import numpy, torch, matplotlib.pyplot``) with the plain
   ``AsyncKernelManager`` and with ``SandboxedKernelManager``;
2. kernel start, then ``import matplotlib.pyplot``, with each manager;
3. ``python -c pass`` plain and through ``run_sandboxed`` (run folder, package copy, pids cgroup, bwrap,
   launcher): the fixed cost of one sandbox.

Goal: the sandbox adds at most ~10 % to a typical 5-10 s autograde of one submission, i.e. a fixed cost well
under a second (``bench_autograde.py`` measures whole submissions).

Usage: python benchmarks/bench_sandbox.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kdcourse.tables import format_table  # noqa: E402


def execute_once(manager_class, folder) -> float:
    """Wall seconds of nbclient executing the notebook (kernel start and shutdown included)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import numpy, torch, matplotlib.pyplot\nprint(1)")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(notebook, kernel_manager_class=manager_class, timeout=300,
                            resources={"metadata": {"path": str(folder)}},
                            extra_arguments=["--HistoryManager.hist_file=:memory:"])
    started = time.perf_counter()
    client.execute()
    return time.perf_counter() - started


async def start_and_import(manager_class, folder) -> tuple[float, float]:
    """Seconds from ``start_kernel`` to ready, and to the end of ``import matplotlib.pyplot``."""
    started = time.perf_counter()
    km = manager_class()
    await km.start_kernel(cwd=str(folder), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
        ready = time.perf_counter() - started
        await kc.execute_interactive("import matplotlib.pyplot", timeout=120, output_hook=lambda msg: None)
        imported = time.perf_counter() - started
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()
    return ready, imported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from jupyter_client.manager import AsyncKernelManager

    from kdcourse.sandbox import SandboxedKernelManager, run_sandboxed

    managers = {"plain": AsyncKernelManager, "sandboxed": SandboxedKernelManager}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        execute_once(SandboxedKernelManager, folder)  # warm the page cache
        times = {name: {"notebook": [], "ready": [], "import": [], "python -c pass": []} for name in managers}
        for _ in range(args.runs):
            for name, manager in managers.items():
                times[name]["notebook"].append(execute_once(manager, folder))
                ready, imported = asyncio.run(start_and_import(manager, folder))
                times[name]["ready"].append(ready)
                times[name]["import"].append(imported)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            times["plain"]["python -c pass"].append(time.perf_counter() - started)
            started = time.perf_counter()
            run_sandboxed([sys.executable, "-c", "pass"])
            times["sandboxed"]["python -c pass"].append(time.perf_counter() - started)
    for what, label in (("notebook", "tiny notebook through nbclient"), ("ready", "kernel ready"),
                        ("import", "kernel ready + import matplotlib.pyplot"), ("python -c pass", "python -c pass")):
        plain, boxed = times["plain"][what], times["sandboxed"][what]
        ratios = [b / p for b, p in zip(boxed, plain)]
        rows.append([label, f"{statistics.median(plain):.2f}", f"{statistics.median(boxed):.2f}",
                     f"{statistics.median(boxed) - statistics.median(plain):+.2f}", f"{statistics.median(ratios):.2f}"])
    print(f"{args.runs} interleaved runs each (seconds, medians)")
    print(format_table(["measure", "plain", "sandboxed", "sandbox adds", "ratio"], rows, align="lrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
