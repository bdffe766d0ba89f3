"""What a sandboxed kernel sees of the file system: the Python environment, a filtered copy of the package,
stubs over hidden third-party modules, and the order in which ``bwrap`` must mount them.

Only the standard library is used, and nothing is imported to find a module (``importlib.util.find_spec`` of
a top-level name does not import it).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Modules a student's kernel must not import: the grading code and the judge.
DEFAULT_HIDDEN_MODULES: tuple[str, ...] = ("kdcourse.grading", "kdcourse.judge")

#: The top-level package this sandbox belongs to, and the subpackage that must stay visible (its launcher).
PACKAGE = __name__.split(".")[0]
SANDBOX_PACKAGE = __name__.rpartition(".")[0]

#: Files of ``/etc`` that the interpreter, matplotlib and the C library read (bound read-only when present).
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/fonts", "/etc/localtime",
    "/etc/timezone", "/etc/alternatives", "/etc/nsswitch.conf", "/etc/mime.types",
)
#: Top-level system folders: Debian's merged-usr symlinks are recreated as symlinks, real folders bound.
SYSTEM_TOP = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Mount:
    """One ``bwrap`` file-system operation, e.g. ``Mount("--ro-bind", "/usr", "/usr")``.

    ``dest`` is the path inside the sandbox; ``source`` the host path (binds) or link target (symlinks);
    ``size`` a tmpfs size in bytes.
    """

    op: str
    dest: str
    source: str | None = None
    size: int | None = None

    def args(self) -> list[str]:
        out = ["--size", str(self.size)] if self.size is not None else []
        out.append(self.op)
        if self.source is not None:
            out.append(self.source)
        out.append(self.dest)
        return out


def depth(path: str) -> int:
    """Number of components of an absolute path: ``depth("/") == 0``, ``depth("/tmp/x") == 2``."""
    return len([part for part in path.split("/") if part])


def order_mounts(mounts: Iterable[Mount]) -> list[Mount]:
    """Parents before children, otherwise in the given order.

    ``bwrap`` applies its options in order, and a mount hides whatever an earlier one put below it (a
    ``--tmpfs /tmp`` given after a bind under ``/tmp`` hides that bind). Sorting by the depth of the
    destination (stable) puts every mount after the mounts of its ancestors.
    """
    return sorted(mounts, key=lambda mount: depth(mount.dest))


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it (both absolute, normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def outermost(paths: Iterable[str], covered_by: Sequence[str] = ()) -> list[str]:
    """Paths without those inside another one (or inside any of ``covered_by``), sorted."""
    unique = sorted(set(paths), key=lambda path: (depth(path), path))
    kept: list[str] = []
    for path in unique:
        if not any(is_within(path, other) for other in [*covered_by, *kept]):
            kept.append(path)
    return sorted(kept)


def system_mounts() -> list[Mount]:
    """``/usr``, the top-level library folders and the few ``/etc`` files that programs need, read-only."""
    mounts = [Mount("--ro-bind", "/usr", "/usr")]
    for top in SYSTEM_TOP:
        if os.path.islink(top):
            mounts.append(Mount("--symlink", top, os.readlink(top)))
        elif os.path.isdir(top):
            mounts.append(Mount("--ro-bind", top, top))
    mounts += [Mount("--ro-bind", path, path) for path in ETC_FILES if os.path.exists(path)]
    return mounts


def python_roots() -> list[str]:
    """Folders of the running Python environment: the installation (``sys.base_prefix``, real path), the venv
    (``sys.prefix``) and the interpreter's folder, outermost only and leaving out what ``/usr`` covers."""
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix)}
    roots.add(os.path.abspath(sys.prefix))
    for executable in (os.path.abspath(sys.executable), os.path.realpath(sys.executable)):
        folder = os.path.dirname(executable)
        if not any(is_within(folder, root) for root in roots):
            roots.add(folder)
    return outermost(roots, covered_by=["/usr"])


def package_dir() -> Path:
    """The folder of the installed ``kdcourse`` package (editable or not), as Python imported it."""
    module = sys.modules.get(PACKAGE)
    origin = getattr(module, "__file__", None) or str(Path(__file__).resolve().parent.parent / "__init__.py")
    return Path(os.path.abspath(origin)).parent


def check_hidden_modules(names: Iterable[str]) -> tuple[str, ...]:
    """Validate ``hidden_modules``: dotted names, never the package itself nor its sandbox.

    Raises
    ------
    TypeError
        If ``names`` is a single string or holds a non-string.
    ValueError
        If a name is not a dotted Python name, or would hide ``kdcourse`` or ``kdcourse.sandbox``.
    """
    if isinstance(names, str):
        raise TypeError(f"hidden_modules must be a list of module names, not one string (got {names!r})")
    checked = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"hidden_modules must hold strings (got {type(name).__name__}: {name!r})")
        if not _DOTTED.match(name):
            raise ValueError(f"hidden_modules: {name!r} is not a dotted module name such as 'kdcourse.grading'")
        path, sandbox = name.replace(".", "/"), SANDBOX_PACKAGE.replace(".", "/")
        if is_within(sandbox, path) or is_within(path, sandbox):
            raise ValueError(f"hidden_modules: {name!r} cannot be hidden: the sandbox's launcher lives in "
                             f"{SANDBOX_PACKAGE}")
        checked.append(name)
    return tuple(dict.fromkeys(checked))


def _module_paths(name: str) -> list[Path]:
    """Files or folders that hold module ``name`` (all locations of a namespace package), without importing."""
    top, _, rest = name.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        bases = [Path(location) for location in spec.submodule_search_locations]
    elif spec.origin and os.path.isfile(spec.origin) and not rest:
        return [Path(spec.origin)]
    else:
        return []
    parts = rest.split(".") if rest else []
    found: list[Path] = []
    for base in bases:
        path: Path | None = base
        for index, part in enumerate(parts):
            assert path is not None
            if (path / part).is_dir():
                path = path / part
                continue
            if index == len(parts) - 1:  # a module file: source, compiled or extension
                found += [path / (part + suffix) for suffix in importlib.machinery.all_suffixes()
                          if (path / (part + suffix)).is_file()]
            path = None
            break
        if path is not None:
            found.append(path)
    return found


def split_hidden(names: Iterable[str]) -> tuple[list[tuple[str, ...]], list[str]]:
    """``(parts inside kdcourse, third-party names)``: ``kdcourse.grading`` -> ``("grading",)``."""
    inside, outside = [], []
    for name in check_hidden_modules(names):
        if name.startswith(PACKAGE + "."):
            inside.append(tuple(name.split(".")[1:]))
        else:
            outside.append(name)
    return inside, outside


def _module_parts(relative: Path) -> tuple[str, ...]:
    """The dotted-name parts of a file in the package: ``grading/x.py`` -> ``("grading", "x")``;
    ``__pycache__/judge.cpython-311.pyc`` -> ``("judge",)``; ``judge.cpython-311-x86_64-linux-gnu.so``
    -> ``("judge",)``."""
    folders = [part for part in relative.parts[:-1] if part != "__pycache__"]
    return (*folders, relative.name.split(".", 1)[0])


def copy_package(source: Path, destination: Path, hidden: Sequence[tuple[str, ...]]) -> list[str]:
    """Copy the package folder ``source`` to ``destination`` without the hidden subpackages and modules
    (their sources, compiled ``__pycache__`` files and extension modules). Symlinks and special files are
    not copied. Returns the relative paths left out."""
    left_out = []

    def hidden_path(parts: tuple[str, ...]) -> bool:
        return any(parts[: len(hide)] == hide for hide in hidden)

    for folder, subfolders, files in os.walk(source):
        relative_folder = Path(folder).relative_to(source)
        for sub in list(subfolders):
            relative = relative_folder / sub
            parts = tuple(part for part in relative.parts if part != "__pycache__")
            if (sub != "__pycache__" and hidden_path(parts)) or os.path.islink(os.path.join(folder, sub)):
                subfolders.remove(sub)
                left_out.append(str(relative))
        (destination / relative_folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            relative = relative_folder / name
            path = os.path.join(folder, name)
            if hidden_path(_module_parts(relative)) or os.path.islink(path) or not os.path.isfile(path):
                left_out.append(str(relative))
                continue
            shutil.copy2(path, destination / relative)
    return left_out


def stub_source(name: str) -> str:
    """Source of the stub mounted over a hidden third-party module: importing it raises ImportError."""
    message = f"No module named {name!r} (hidden while this notebook is graded)"
    return f"raise ModuleNotFoundError({message!r}, name={name!r})\n"


def make_stubs(names: Iterable[str], folder: Path) -> list[Mount]:
    """Stubs in ``folder`` over each hidden third-party module, as read-only bind mounts.

    A package folder is covered by a folder whose ``__init__.py`` raises ``ModuleNotFoundError``; a ``.py``
    module by such a file; an extension module by an empty file (``dlopen`` refuses it). A name that is not
    installed needs nothing.
    """
    mounts = []
    for index, name in enumerate(names):
        for count, path in enumerate(_module_paths(name)):
            stub = folder / f"{index}-{count}-{name}"
            if path.is_dir():
                stub.mkdir(parents=True)
                (stub / "__init__.py").write_text(stub_source(name), encoding="utf-8")
            elif path.suffix == ".py":
                stub.write_text(stub_source(name), encoding="utf-8")
            else:
                stub.write_bytes(b"")
            mounts.append(Mount("--ro-bind", dest=str(path), source=str(stub)))
    return mounts
