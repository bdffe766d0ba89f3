"""The environment variables of a sandboxed command: the grader's, minus what is dangerous or secret, with
``HOME``, ``TMPDIR`` and the IPython / matplotlib / Jupyter folders pointed inside the sandbox.

The launcher (:mod:`kdcourse.sandbox.launcher`) finishes the job inside the sandbox, where it can see which
``PYTHONPATH`` entries exist and are read-only.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

#: Variables never passed on: code run at start-up, loader tricks, a foreign Python home, agent sockets.
DROPPED = frozenset({
    "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONINSPECT", "PYTHONEXECUTABLE",
    "PYTHONPYCACHEPREFIX", "PYTHONPLATLIBDIR", "PYTHONBREAKPOINT", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
    "JPY_PARENT_PID", "MATPLOTLIBRC", "GLIBC_TUNABLES", "VIRTUAL_ENV",
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO", "GNUPGHOME", "KRB5CCNAME",
    "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY",
    "BASH_ENV", "ENV", "PROMPT_COMMAND", "CDPATH", "PWD", "OLDPWD", "TMP", "TEMP", "HISTFILE",
})
#: Prefixes of dropped variables (``LD_LIBRARY_PATH`` is kept and filtered by the launcher).
DROPPED_PREFIXES = ("LD_", "DYLD_", "JUPYTER_", "BASH_FUNC_", "XDG_")
KEPT = frozenset({"LD_LIBRARY_PATH"})
#: Names that look like credentials: a student could print them into the feedback.
SECRET = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE|AUTH|COOKIE", re.IGNORECASE)

SANDBOX_USER = "student"


@dataclass(frozen=True)
class Layout:
    """Where a sandboxed command's private folders are, as the command sees them.

    ``home`` holds ``work`` (the command's working folder) and the IPython, matplotlib and Jupyter folders;
    ``tmp`` is its ``/tmp``.
    """

    home: str
    work: str
    tmp: str

    def folders(self) -> dict[str, str]:
        """Environment variables that name the private folders."""
        home = self.home
        return {
            "HOME": home,
            "TMPDIR": self.tmp,
            "IPYTHONDIR": f"{home}/.ipython",
            "MPLCONFIGDIR": f"{home}/.config/matplotlib",
            "JUPYTER_CONFIG_DIR": f"{home}/.jupyter",
            "JUPYTER_DATA_DIR": f"{home}/.local/share/jupyter",
            "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime",
            "XDG_CACHE_HOME": f"{home}/.cache",
            "XDG_CONFIG_HOME": f"{home}/.config",
            "XDG_DATA_HOME": f"{home}/.local/share",
        }


#: The layout inside the sandbox.
SANDBOX_LAYOUT = Layout(home=f"/home/{SANDBOX_USER}", work=f"/home/{SANDBOX_USER}/work", tmp="/tmp")


def is_dropped(name: str) -> bool:
    """Whether variable ``name`` is left out of a sandboxed command's environment."""
    if name in KEPT:
        return False
    return name in DROPPED or name.startswith(DROPPED_PREFIXES) or bool(SECRET.search(name))


def clean_environment(env: Mapping[str, str] | None, layout: Layout) -> dict[str, str]:
    """The environment for a sandboxed command, built from ``env`` (default ``os.environ``).

    Dangerous and secret-looking variables (:func:`is_dropped`) are removed; the private folders of
    ``layout``, ``PATH`` (the venv's ``bin`` and the system's), ``USER``, ``PYTHONSAFEPATH=1`` (the working
    folder is never on ``sys.path``), ``PYTHONNOUSERSITE=1`` and ``PYTHONDONTWRITEBYTECODE=1`` are set, and
    ``MALLOC_ARENA_MAX=2`` unless given (per-thread malloc arenas would otherwise eat the address-space limit).
    """
    source = os.environ if env is None else env
    cleaned = {name: value for name, value in source.items() if not is_dropped(name)}
    cleaned.update(layout.folders())
    path = [os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
    cleaned.update({
        "USER": SANDBOX_USER, "LOGNAME": SANDBOX_USER, "SHELL": "/bin/sh",
        "PATH": os.pathsep.join(dict.fromkeys(path)),
        "PYTHONSAFEPATH": "1", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    # glibc gives each thread its own 64 MiB malloc arena: under RLIMIT_AS, 8 threads of a kernel with torch
    # reserved 1.9 of its 2 GiB; with 2 arenas, 0.9 GiB
    cleaned.setdefault("MALLOC_ARENA_MAX", "2")
    if sys.prefix != sys.base_prefix:
        cleaned["VIRTUAL_ENV"] = sys.prefix
    return cleaned
