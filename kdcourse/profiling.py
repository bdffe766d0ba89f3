"""Peak tensor memory of one call, from the allocation events torch's profiler records.

Exact and independent of the C allocator, on the CPU and on accelerators alike: the largest amount of
tensor memory ``call()`` had allocated at once above what was live when it started. Used by the
language-model lecture to compare the naive and the fused token losses, and by the loss benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

__all__ = ["peak_tensor_bytes"]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ library logs its start and stop there, which a
    notebook would show as stderr. Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_tensor_bytes(call: Callable[[], object]) -> tuple[int, int]:
    """``(peak, retained)``: the most tensor bytes ``call()`` held at once, and what it left allocated."""
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak, live
