"""What a sandboxed kernel sees of the file system: the Python environment, a filtered copy of the package,
stubs over hidden third-party modules, and the order in which ``bwrap`` must mount them.

Only the standard library is used, and nothing is imported to find a module (``importlib.util.find_spec`` of
a top-level name does not import it).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import sys
import zipfile
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


def _spec_paths(name: str) -> list[Path]:
    """Files or folders that hold module ``name`` where this interpreter would import it from (all locations
    of a namespace package), without importing."""
    top, _, rest = name.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return _descend([Path(location) for location in spec.submodule_search_locations], rest)
    if spec.origin and os.path.isfile(spec.origin) and not rest:
        return [Path(spec.origin)]
    return []


def is_module_file(filename: str, module: str) -> bool:
    """Whether a file called ``filename`` can be imported as the module ``module`` by some interpreter: its
    source, its byte code (also from ``__pycache__``, for any interpreter) or an extension module for any ABI.

    >>> [is_module_file(f, "scipy") for f in ("scipy.py", "scipy.cpython-311.pyc", "scipy.abi3.so", "scipy.libs")]
    [True, True, True, False]
    """
    first, dot, rest = filename.partition(".")
    if first != module or not dot:
        return False
    return rest in ("py", "pyw", "pyc", "so", "pyd") or rest.endswith((".pyc", ".so", ".pyd"))


def _holds_code(folder: str) -> bool:
    """Whether a folder holds an importable module file anywhere below it (a package, or a namespace
    package's portion, rather than e.g. a documentation folder of the same name)."""
    for _, _, files in os.walk(folder):
        if any(is_module_file(name, name.partition(".")[0]) for name in files):
            return True
    return False


def _descend(bases: Iterable[Path], rest: str) -> list[Path]:
    """Inside each package folder of ``bases``, the folder or module files of the dotted path ``rest``
    (``""``: the folders themselves)."""
    parts = rest.split(".") if rest else []
    found: list[Path] = []
    for base in bases:
        path: Path | None = base
        for index, part in enumerate(parts):
            assert path is not None
            if (path / part).is_dir():
                path = path / part
                continue
            if index == len(parts) - 1:  # a module file: source, compiled or extension, also in __pycache__
                for folder in (path, path / "__pycache__"):
                    try:
                        names = sorted(os.listdir(folder))
                    except OSError:
                        continue
                    found += [folder / name for name in names
                              if is_module_file(name, part) and (folder / name).is_file()]
            path = None
            break
        if path is not None:
            found.append(path)
    return found


#: Files that ``zipimport`` may be pointed at (a zip archive can be a ``sys.path`` entry).
ARCHIVE_SUFFIXES = (".zip", ".egg", ".whl", ".pyz")


def _archive_holds(path: str, tops: frozenset[str]) -> set[str]:
    """Which of ``tops`` the zip archive at ``path`` holds as a module or package, at any depth (``zipimport``
    also takes ``archive.zip/sub/folder`` as a path entry)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return set()
    held = set()
    for member in names:
        parts = member.split("/")
        held.update(part for part in parts[:-1] if part in tops)
        first = parts[-1].partition(".")[0]
        if first in tops and is_module_file(parts[-1], first):
            held.add(first)
    return held


def readonly_trees() -> list[str]:
    """The host folders that a sandbox binds read-only and in which Python modules may live: ``/usr``, the
    Python roots (:func:`python_roots`) and the top-level system folders that are real folders."""
    trees = ["/usr", *python_roots()]
    trees += [top for top in SYSTEM_TOP if os.path.isdir(top) and not os.path.islink(top)]
    return outermost(trees)


@functools.lru_cache(maxsize=16)
def module_copies(tops: frozenset[str], trees: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Every importable copy, under ``trees``, of each top-level module in ``tops``: ``(top, path)`` pairs
    (``path`` a folder, a module file or an archive).

    Any folder of those trees can be put on ``sys.path`` by code in the sandbox, not only ``site-packages``:
    every folder is looked at (about a second for a whole ``/usr`` and a venv; cached per process). A copy is a
    package or namespace folder that holds code, a module file (:func:`is_module_file`, ``__pycache__``
    included) or a zip archive that holds the module (covered whole). Symlinks are not followed: what they
    point to is found where it lies.
    """
    found: list[tuple[str, str]] = []
    pending = list(trees)
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    pending.append(entry.path)
                    if name in tops and _holds_code(entry.path):
                        found.append((name, entry.path))
                    continue
            except OSError:
                continue
            top = name.partition(".")[0]
            if top in tops and is_module_file(name, top):
                found.append((top, entry.path))
            elif name.endswith(ARCHIVE_SUFFIXES):
                found += [(held, entry.path) for held in sorted(_archive_holds(entry.path, tops))]
    return tuple(found)


def module_paths(name: str, copies: Iterable[tuple[str, str]] | None = None, skip: Sequence[str] = ()) -> list[Path]:
    """Every file, folder or archive from which module ``name`` could be imported in the sandbox, outermost
    only: where this interpreter finds it, and each of ``copies`` of its top-level module (default: those
    under :func:`readonly_trees`, see :func:`module_copies`), leaving out what lies in ``skip``."""
    top, _, rest = name.partition(".")
    if copies is None:
        copies = module_copies(frozenset([top]), tuple(readonly_trees()))
    paths = [str(path) for path in _spec_paths(name)]
    for found_top, path in copies:
        if found_top != top:
            continue
        if os.path.isdir(path):
            paths += [str(found) for found in _descend([Path(path)], rest)]
        elif not rest or path.endswith(ARCHIVE_SUFFIXES):  # an archive is covered whole
            paths.append(path)
    kept = [path for path in paths if not any(is_within(path, other) for other in skip)]
    return [Path(path) for path in outermost(kept)]


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


def make_stubs(names: Iterable[str], folder: Path, skip: Sequence[str] = ()) -> list[Mount]:
    """Stubs in ``folder`` over every copy of each hidden module (:func:`module_paths`), as read-only binds.

    A package folder is covered by a folder whose ``__init__.py`` raises ``ModuleNotFoundError``; a ``.py``
    module by such a file; byte code, an extension module or a zip archive by an empty file (``dlopen``,
    the byte-code loader and ``zipimport`` refuse it). A name that is not installed needs nothing. Paths in
    ``skip`` (the package itself, whose copy leaves hidden parts out) are not covered.
    """
    names = list(names)
    if not names:
        return []
    copies = module_copies(frozenset(name.partition(".")[0] for name in names), tuple(readonly_trees()))
    mounts = []
    covered: list[str] = []
    for index, name in enumerate(names):
        for count, path in enumerate(module_paths(name, copies, skip=skip)):
            if any(is_within(str(path), other) for other in covered):
                continue  # inside a folder covered already (e.g. scipy.special when scipy is hidden too)
            stub = folder / f"{index}-{count}-{name}"
            if path.is_dir():
                stub.mkdir(parents=True)
                (stub / "__init__.py").write_text(stub_source(name), encoding="utf-8")
            elif path.suffix == ".py":
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text(stub_source(name), encoding="utf-8")
            else:
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_bytes(b"")
            covered.append(str(path))
            mounts.append(Mount("--ro-bind", dest=str(path), source=str(stub)))
    return [mount for mount in mounts
            if not any(mount.dest != other and is_within(mount.dest, other) for other in covered)]
