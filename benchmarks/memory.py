"""Peak memory of one call, for the benchmarks that compare losses: tensor bytes and resident set.

* :func:`tensor_peak_bytes` (:func:`kdcourse.profiling.peak_tensor_bytes`): the largest amount of tensor memory a call allocated above what was live when
  it started, from the allocation and free events ``torch.profiler`` records with ``profile_memory=True``.
  Exact and independent of the C allocator: the number to compare.
* :func:`rss_peak_bytes`: growth of the process's resident set, peak during the call minus the value just
  before it, read from ``VmHWM`` in ``/proc/self/status`` after resetting it through ``/proc/self/clear_refs``
  (Linux only; ``None`` elsewhere). Run the process with ``MALLOC_MMAP_THRESHOLD_=65536`` (see
  :data:`CHILD_ENVIRONMENT`) so glibc serves every block of 64 KiB or more with its own ``mmap`` and returns
  it on free; otherwise freed heap memory would be reused without showing up.

Measure each variant in a fresh process, after one untimed warm-up call, so that nothing another variant
left behind counts.
"""

from __future__ import annotations

from collections.abc import Callable

from kdcourse.profiling import peak_tensor_bytes as tensor_peak_bytes  # the one home of the profiler count

__all__ = ["CHILD_ENVIRONMENT", "rss_peak_bytes", "tensor_peak_bytes"]

#: Extra environment for a child process that measures memory.
CHILD_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def rss_peak_bytes(call: Callable[[], object]) -> int | None:
    """Peak resident-set growth during ``call()`` in bytes, or ``None`` where Linux's counters are missing."""
    before = _status_kib("VmRSS")
    if before is None or not _reset_peak_rss():
        return None
    call()
    high_water = _status_kib("VmHWM")
    return None if high_water is None else (high_water - before) * 1024
