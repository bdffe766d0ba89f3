"""Peak tensor memory of one call, from the allocation events torch's profiler records.

Exact and independent of the C allocator, on the CPU and on accelerators alike: the largest amount of
tensor memory ``call()`` had allocated at once above what was live when it started. Used by the
language-model lecture to compare the naive and the fused token losses, and by the loss benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["peak_tensor_bytes"]


def peak_tensor_bytes(call: Callable[[], object]) -> tuple[int, int]:
    """``(peak, retained)``: the most tensor bytes ``call()`` held at once, and what it left allocated."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak, live
