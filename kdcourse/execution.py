"""Running notebooks in fresh kernels: the one kernel environment, and a sandboxed executor.

Every kernel kdcourse starts — the notebook tests, the notebook benchmark and the grader's kernels —
gets :func:`kernel_environment`: one thread per maths library (kernels run side by side), no progress
bars, the headless ``Agg`` plotting backend, a fixed hash seed, and the CPU unless ``KDCOURSE_DEVICE``
says otherwise. :func:`execute_notebook` runs a notebook top to bottom in a kernel inside the sandbox
of :mod:`kdcourse.sandbox` (read-only environment, no network, its own processes and limits).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcourse.notebooks import cell_errors, read_notebook

__all__ = ["KERNEL_ENVIRONMENT", "kernel_environment", "ExecutionResult", "execute_notebook", "sandboxed_client",
           "NOTEBOOK_HIDDEN_MODULES"]

#: What every kdcourse kernel is given (``KDCOURSE_DEVICE`` is taken from the caller when set).
KERNEL_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "KDCOURSE_PROGRESS": "0",
    "TQDM_DISABLE": "1",
    "MPLBACKEND": "Agg",
    "PYTHONHASHSEED": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}

#: What a kernel running a lecture or an instructor's source notebook may not import: the grading tools.
NOTEBOOK_HIDDEN_MODULES = ("kdcourse.grading",)


def kernel_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables kdcourse sets for a kernel, on top of the caller's environment.

    Parameters
    ----------
    extra : dict, optional
        More variables (they win over the defaults).

    Returns
    -------
    dict
        :data:`KERNEL_ENVIRONMENT`, ``KDCOURSE_DEVICE`` (``"cpu"`` unless the caller's environment
        sets it), then ``extra``.
    """
    env = dict(KERNEL_ENVIRONMENT)
    env["KDCOURSE_DEVICE"] = os.environ.get("KDCOURSE_DEVICE", "cpu")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class ExecutionResult:
    """An executed notebook, its wall time in seconds (kernel start included) and its cells' errors."""

    notebook: Any
    seconds: float
    errors: list[dict[str, Any]]


def sandboxed_client(nb: Any, workdir: Path, timeout: float, allow_errors: bool,
                     hidden_modules: tuple[str, ...] = NOTEBOOK_HIDDEN_MODULES, sandbox: bool = True,
                     client_class: type | None = None) -> Any:
    """An nbclient client for ``nb`` whose kernel runs sandboxed with ``workdir``'s files, its manager created.

    ``client_class`` is ``nbclient.NotebookClient`` or a subclass of it (default the class itself);
    ``timeout`` is the per-cell hang guard and, at least 60 s, the kernel start limit.
    """
    from nbclient import NotebookClient

    from kdcourse.sandbox import SandboxedKernelManager

    client = (client_class or NotebookClient)(
        nb,
        timeout=timeout,
        startup_timeout=max(60, int(timeout)),
        iopub_timeout=60,
        kernel_name="python3",
        allow_errors=allow_errors,
        kernel_manager_class=SandboxedKernelManager,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.km = client.create_kernel_manager()
    client.km.hidden_modules = list(hidden_modules)
    client.km.unsafe_no_sandbox = not sandbox
    return client


def execute_notebook(
    path: str | Path,
    timeout: float = 600,
    cwd: str | Path | None = None,
    allow_errors: bool = False,
    env: dict[str, str] | None = None,
    notebook: Any | None = None,
    hidden_modules: tuple[str, ...] = NOTEBOOK_HIDDEN_MODULES,
    sandbox: bool = True,
) -> ExecutionResult:
    """Run a notebook top to bottom in a fresh kernel.

    Parameters
    ----------
    path : path
        The notebook; with ``notebook`` given, only its folder is used (as the working directory).
    timeout : float
        Per-cell hang guard in seconds (also the kernel start limit, at least 60 s).
    cwd : path, optional
        Working directory whose files the kernel gets a copy of (default: the notebook's folder).
    allow_errors : bool
        ``False``: the first error raises ``nbclient.exceptions.CellExecutionError``; ``True``: run on
        and list the errors in the result.
    env : dict, optional
        Extra environment variables (on top of :func:`kernel_environment`).
    notebook : NotebookNode, optional
        Run this notebook instead of reading ``path``.
    hidden_modules : tuple of str
        Modules the kernel may not import (see :class:`kdcourse.sandbox.SandboxedKernelManager`).
    sandbox : bool
        Run the kernel inside the sandbox (default). ``False`` only where the sandbox cannot start.

    Returns
    -------
    ExecutionResult
    """
    path = Path(path)
    nb = copy.deepcopy(notebook) if notebook is not None else read_notebook(path)
    workdir = Path(cwd) if cwd else path.parent
    client = sandboxed_client(nb, workdir, timeout, allow_errors, hidden_modules, sandbox)
    start = time.perf_counter()
    client.execute(env={**os.environ, **kernel_environment(env)})
    seconds = time.perf_counter() - start
    return ExecutionResult(nb, seconds, cell_errors(nb))
