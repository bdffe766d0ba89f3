"""Trusted first program inside the sandbox: set the resource limits, fill the private folders, clean the
environment, then ``exec`` the kernel (or a plain command).

Standard library only. Run by path, before any student code::

    python -I -S .../kdcourse/sandbox/launcher.py [OPTIONS] -- -m ipykernel_launcher -f CONNECTION_FILE ...

(by path rather than ``-m kdcourse.sandbox.launcher``: ``-m`` would first run ``kdcourse/__init__.py``, which
imports torch, 2-3 s per kernel; ``-I -S`` keeps the launcher itself free of environment variables, the
working folder and ``site``).

Options
-------
``--memory BYTES``, ``--cpu SECONDS``, ``--fsize BYTES``, ``--nproc N``
    ``RLIMIT_AS``, ``RLIMIT_CPU`` (soft; hard 2 s later), ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` (only when the
    grader chose it: inside the sandbox's user namespace only the sandbox's processes count).
``--seed SOURCE DEST``
    Copy the regular files of folder ``SOURCE`` (not recursively) into ``DEST`` (made if missing).
``--sandboxed``
    Inside the sandbox: keep only ``PYTHONPATH`` / ``LD_LIBRARY_PATH`` entries that exist and are not
    writable, and set ``JPY_PARENT_PID=1`` (the grader's pid means nothing in this PID namespace, where the
    kernel's parent is bwrap's init, pid 1: ipykernel then neither polls a parent nor prints its banner).
``--hide NAME``
    (Kernel mode, repeatable.) Also refuse to import module ``NAME`` (and its submodules) from inside the
    kernel process with an import hook placed first on ``sys.meta_path`` (:data:`GUARD`) before
    ``ipykernel_launcher`` runs. Defence in depth only: code in the kernel can remove the hook; what hides a
    module is that every copy of it is covered by a stub (:func:`kdcourse.sandbox.view.make_stubs`).
``--mode kernel|exec``
    ``kernel``: ``exec`` this interpreter with ``-P -s`` and the arguments (``-m MODULE ARGS...`` run as ``-m``
    would, behind the hook of ``--hide``); ``exec``: run the arguments as a command (``PATH`` lookup).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys

#: Seconds between SIGXCPU (the soft CPU limit) and SIGKILL (the hard one), for a kernel that ignores SIGXCPU.
CPU_GRACE_SECONDS = 2
#: Interpreter flags of the kernel: no unsafe path (working folder, script folder) and no user site.
KERNEL_FLAGS = ("-P", "-s")

#: Run by the kernel's interpreter as ``-c GUARD -m MODULE ARGS...``: refuse the hidden modules (``{hidden}``)
#: with a finder first on ``sys.meta_path``, whose spec fails to load as a stub does, then run ``MODULE`` as
#: ``-m`` does (``sys.argv[0]`` becomes its file; with ``-P`` nothing is put in front of ``sys.path``).
GUARD = """\
import sys


class KdcourseHiddenModules:
    \"\"\"kdcourse sandbox: these modules are hidden while a notebook is graded.\"\"\"

    hidden = {hidden!r}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if any(name == hidden or name.startswith(hidden + ".") for hidden in cls.hidden):
            from importlib.machinery import ModuleSpec

            return ModuleSpec(name, cls)
        return None

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        name = module.__name__
        raise ModuleNotFoundError(f"No module named {{name!r}} (hidden while this notebook is graded)", name=name)


sys.meta_path.insert(0, KdcourseHiddenModules)
del KdcourseHiddenModules
_module = sys.argv[2]
del sys.argv[1:3]
import runpy

if hasattr(runpy, "_run_module_as_main"):  # what -m itself runs
    runpy._run_module_as_main(_module)
else:
    runpy.run_module(_module, run_name="__main__", alter_sys=True)
"""


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """``(options, command)`` from ``argv`` (see the module docstring)."""
    options: dict = {"seed": [], "mode": "exec", "strict": False, "hide": []}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return options, argv[index + 1:]
        if arg == "--sandboxed":
            options["strict"] = True
            index += 1
        elif arg == "--hide":
            options["hide"].append(argv[index + 1])
            index += 2
        elif arg == "--seed":
            options["seed"].append((argv[index + 1], argv[index + 2]))
            index += 3
        elif arg in ("--memory", "--cpu", "--fsize", "--nproc"):
            options[arg[2:]] = int(argv[index + 1])
            index += 2
        elif arg == "--mode":
            options["mode"] = argv[index + 1]
            index += 2
        else:
            raise SystemExit(f"kdcourse sandbox launcher: unknown option {arg!r}")
    raise SystemExit("kdcourse sandbox launcher: missing '--' before the command")


def seed(source: str, destination: str) -> None:
    """Copy the regular files (not symlinks, not folders) of ``source`` into ``destination``."""
    os.makedirs(destination, exist_ok=True)
    for entry in os.scandir(source):
        if entry.is_file(follow_symlinks=False):
            shutil.copy(entry.path, os.path.join(destination, entry.name), follow_symlinks=False)


def set_limits(options: dict) -> None:
    """Apply the rlimits named in ``options``; a limit can only be lowered."""

    def lower(which: int, soft: int, hard: int) -> None:
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))

    lower(resource.RLIMIT_CORE, 0, 0)
    if "memory" in options:
        lower(resource.RLIMIT_AS, options["memory"], options["memory"])
    if "cpu" in options:
        lower(resource.RLIMIT_CPU, options["cpu"], options["cpu"] + CPU_GRACE_SECONDS)
    if "fsize" in options:
        lower(resource.RLIMIT_FSIZE, options["fsize"], options["fsize"])
    if "nproc" in options:
        lower(resource.RLIMIT_NPROC, options["nproc"], options["nproc"])


def safe_entries(value: str, strict: bool) -> str:
    """The entries of a search path that are absolute and exist, and (``strict``) are not writable."""
    kept = []
    for entry in value.split(os.pathsep):
        if not entry or not os.path.isabs(entry) or not os.path.exists(entry):
            continue
        if strict and os.access(entry, os.W_OK):
            continue
        kept.append(entry)
    return os.pathsep.join(dict.fromkeys(kept))


def clean_environment(environ: dict[str, str], strict: bool) -> dict[str, str]:
    """The command's environment: safe ``PYTHONPATH`` / ``LD_LIBRARY_PATH``, and (``strict``, in the sandbox)
    ``JPY_PARENT_PID=1``: with the grader's pid, ipykernel would poll a process it cannot see and exit."""
    env = dict(environ)
    for name in ("PWD", "OLDPWD", "SHLVL", "_"):  # set by the /bin/sh that joins the pids cgroup
        env.pop(name, None)
    if strict:
        env["JPY_PARENT_PID"] = "1"
    for name in ("PYTHONPATH", "LD_LIBRARY_PATH"):
        if name in env:
            value = safe_entries(env[name], strict)
            if value:
                env[name] = value
            else:
                del env[name]
    return env


def kernel_arguments(command: list[str], hidden: list[str]) -> list[str]:
    """The interpreter's arguments for a kernel: ``-m MODULE ...`` behind the :data:`GUARD` of ``hidden``."""
    if not hidden or len(command) < 2 or command[0] != "-m":
        return list(command)
    return ["-c", GUARD.format(hidden=tuple(hidden)), *command]


def main(argv: list[str]) -> None:
    options, command = parse(argv)
    if not command:
        raise SystemExit("kdcourse sandbox launcher: no command after '--'")
    for source, destination in options["seed"]:
        seed(source, destination)
    set_limits(options)
    env = clean_environment(dict(os.environ), options["strict"])
    try:
        if options["mode"] == "kernel":
            os.execve(sys.executable, [sys.executable, *KERNEL_FLAGS, *kernel_arguments(command, options["hide"])],
                      env)
        else:
            os.execvpe(command[0], command, env)
    except OSError as error:
        print(f"kdcourse sandbox launcher: cannot run {command[0]!r}: {error}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main(sys.argv[1:])
