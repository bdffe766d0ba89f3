"""Checks of a submission's code itself, read as text (``ast``) on the trusted side; nothing is run.

* :meth:`NotebookCode.delegation` -- does a graded function hand the exercise to a library (scipy,
  scikit-learn, kdcourse's own reference, ``F.kl_div`` where it is banned)? It follows the function into
  the notebook's own helpers it calls, module-level aliases (``kl = F.kl_div``), default arguments,
  imports inside the function, ``__import__``/``importlib`` and method calls (``z.softmax(-1)``); code
  run from strings (``eval``, ``exec``, a ``getattr`` with a computed name) counts as hiding a call. A
  graded name the notebook binds to a library object instead of defining it (``from lib import f``)
  is judged by what it is bound to.
* :func:`tampering` -- does a student-editable cell reach for the grading machinery (IPython's hooks and
  input transformers, ``get_ipython``, ``sys.modules``, ``builtins``, frames, ``gc``, ``ctypes``, code run
  from strings, rebinding the test cells' ``check``, replacing functions of imported modules)? Such a
  submission is still scored by the judge on its answers, and flagged for a person to look at.
  (Processes, files and the network are the sandbox's business, not this check's.)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .verdict import Wrong

__all__ = ["NotebookCode", "forbid_delegation", "tampering", "DYNAMIC_CODE"]

#: Calls that run code from strings or look names up at run time.
DYNAMIC_CODE = ("eval", "exec", "compile", "__import__", "globals", "vars", "locals", "import_module")
_MAGIC = re.compile(r"^\s*[%!]")
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _parse(source: str) -> ast.Module | None:
    text = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


def _import_aliases(node: ast.stmt) -> Iterator[tuple[str, str]]:
    """``(local name, dotted origin)`` bound by an import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                yield alias.name.split(".")[0], alias.name.split(".")[0]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        for alias in node.names:
            yield alias.asname or alias.name, f"{node.module}.{alias.name}"


def _imported_modules(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.module:
        yield node.module
        for alias in node.names:
            yield f"{node.module}.{alias.name}"


def _in_packages(dotted: str, packages: Iterable[str]) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in packages)


@dataclass
class _Finder:
    code: NotebookCode
    banned_names: tuple[str, ...]
    banned_packages: tuple[str, ...]
    allowed: tuple[str, ...]
    banned_attributes: tuple[str, ...] = ()

    def banned_member(self, name: str) -> bool:
        """Banned as an attribute, a method or an imported name."""
        return name in self.banned_names or name in self.banned_attributes

    def name_finding(self, name: str, visited: set[str]) -> str | None:
        if name in self.banned_names:
            return name
        origin = self.code.aliases.get(name)
        if origin is not None:
            if _in_packages(origin, self.banned_packages) or self.banned_member(origin.split(".")[-1]):
                return f"{name} (from {origin})"
        if name in self.code.values and f"={name}" not in visited:
            visited.add(f"={name}")
            for referenced in self.code.values[name]:
                found = self.dotted_finding(referenced, visited)
                if found:
                    return f"{name} = {found}"
        if name in self.code.functions and name not in self.allowed and name not in visited:
            found = self.function_finding(name, visited)
            if found:
                return f"{name} → {found}"
        return None

    def dotted_finding(self, dotted: str, visited: set[str]) -> str | None:
        parts = dotted.split(".")
        resolved = self.code.resolve(dotted)
        if any(self.banned_member(part) for part in parts[1:]) or _in_packages(resolved, self.banned_packages):
            return dotted if resolved == dotted else f"{dotted} (from {resolved})"
        return self.name_finding(parts[0], visited)

    def node_finding(self, node: ast.AST, visited: set[str]) -> str | None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for module in _imported_modules(node):
                if _in_packages(module, self.banned_packages) or self.banned_member(module.split(".")[-1]):
                    return f"{module} (imported inside the function)"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in DYNAMIC_CODE:
                literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if isinstance(literal, str) and name in ("__import__", "import_module"):
                    if _in_packages(literal, self.banned_packages):
                        return f"{literal} (imported inside the function)"
                else:
                    return f"{name} (code run from a string hides what it calls)"
            if name in ("getattr", "setattr", "delattr") and len(node.args) >= 2:
                attr = node.args[1]
                if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
                    return f"{name} with a computed name (it hides what is called)"
                if self.banned_member(attr.value):
                    return attr.value
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is None:
                if self.banned_member(node.attr):
                    return node.attr
            else:
                found = self.dotted_finding(dotted, visited)
                if found:
                    return found
        if isinstance(node, ast.Name):
            return self.name_finding(node.id, visited)
        return None

    def binding_finding(self, name: str) -> str | None:
        """What a name the notebook binds without defining a function (an import, an assignment) refers to."""
        origin = self.code.aliases.get(name)
        if origin is not None and (_in_packages(origin, self.banned_packages) or self.banned_member(origin.split(".")[-1])):
            return origin
        visited = {f"={name}"}
        for referenced in self.code.values.get(name, []):
            found = self.dotted_finding(referenced, visited)
            if found:
                return found
        return None

    def function_finding(self, name: str, visited: set[str]) -> str | None:
        visited.add(name)
        for definition in self.code.functions.get(name, []):
            for node in ast.walk(definition):
                found = self.node_finding(node, visited)
                if found:
                    return found
        return None


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _references(node: ast.AST) -> list[str]:
    """Names and attribute chains an expression refers to (for module-level aliases)."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            dotted = _dotted(sub)
            if dotted:
                found.append(dotted)
        elif isinstance(sub, ast.Name):
            found.append(sub.id)
    return found


class NotebookCode:
    """The code cells of a submission (or of a live kernel's history), parsed once.

    Parameters
    ----------
    sources : iterable of str
        Cell sources in execution order. IPython magics (``%``, ``!``) are ignored; cells that do not
        parse are skipped.
    """

    def __init__(self, sources: Iterable[str] = ()):
        self.functions: dict[str, list[ast.AST]] = {}
        self.aliases: dict[str, str] = {}
        self.values: dict[str, list[str]] = {}
        self.empty = True
        for source in sources:
            tree = _parse(source)
            if tree is None:
                continue
            self.empty = False
            for node in tree.body:
                self._add(node)

    def _add(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.functions.setdefault(node.name, []).append(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.aliases.update(_import_aliases(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    if isinstance(node.value, ast.Lambda):
                        self.functions.setdefault(target.id, []).append(node.value)
                    else:
                        self.values.setdefault(target.id, []).extend(_references(node.value))
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self._add(child)

    def resolve(self, dotted: str) -> str:
        """``F.kl_div`` -> ``torch.nn.functional.kl_div`` through the notebook's imports."""
        head, _, rest = dotted.partition(".")
        origin = self.aliases.get(head)
        if origin is None:
            return dotted
        return f"{origin}.{rest}" if rest else origin

    def defines(self, name: str) -> bool:
        return name in self.functions

    def delegation(self, function: str, banned_names: Iterable[str] = (), banned_packages: Iterable[str] = (),
                   allowed: Iterable[str] = (), banned_attributes: Iterable[str] = ()) -> str | None:
        """What in ``function`` (or in the notebook functions it calls) uses a banned name or package.

        Parameters
        ----------
        function : str
            The graded function's name.
        banned_names : iterable of str
            Names that do the exercise (``"kl_div"``, ``"softmax"``): banned as a name, an attribute or
            a method, wherever they come from.
        banned_packages : iterable of str
            Dotted prefixes (``"scipy"``, ``"kdcourse"``, ``"torch.nn.functional.kl_div"``).
        allowed : iterable of str
            Notebook functions the exercise lets the answer reuse (they are judged on their own).
        banned_attributes : iterable of str
            Names banned only as an attribute or a method (``torch.softmax``, ``z.softmax(-1)``) or as a
            name imported from anywhere (``from torch import softmax``), not as a bare name the notebook
            binds itself: a student's own helper called ``softmax``, or a local variable ``grad``, is
            inspected (or ignored) like any other name.

        Returns
        -------
        str or None
            A description such as ``"rel_entr (from scipy.special.rel_entr)"`` or
            ``"helper → F.kl_div"``; ``None`` when nothing is found. When the notebook does not define
            ``function`` itself but binds the name to something else (``from lib import function``,
            ``function = lib.function``), that binding is what is judged.
        """
        finder = _Finder(self, tuple(banned_names), tuple(banned_packages), tuple(allowed), tuple(banned_attributes))
        if function not in self.functions:
            return finder.binding_finding(function)
        return finder.function_finding(function, set())


def forbid_delegation(code: NotebookCode, function: str, banned_names: Iterable[str] = (),
                      banned_packages: Iterable[str] = (), allowed: Iterable[str] = (),
                      banned_attributes: Iterable[str] = ()) -> None:
    """Raise :class:`~kdcourse.judge.verdict.Wrong` when ``function`` hands the exercise to a library.

    The arguments are those of :meth:`NotebookCode.delegation`.
    """
    found = code.delegation(function, banned_names, banned_packages, allowed, banned_attributes)
    if found is not None:
        raise Wrong(f"{function} calls {found}: this exercise asks you to write the formula yourself "
                    "(you may use it afterwards to check your answer, but not inside the function).")


# --- tampering ---------------------------------------------------------------------------------------

_TAMPERING_NAMES = {
    "get_ipython": "calls get_ipython(), the kernel's own machinery",
    "__builtins__": "touches __builtins__",
    "settrace": "installs a trace function (sys.settrace)",
    "setprofile": "installs a profile function (sys.setprofile)",
    "_getframe": "reads the interpreter's frames (sys._getframe)",
    "currentframe": "reads the interpreter's frames (inspect.currentframe)",
    "input_transformers_post": "rewrites cells before they run (input transformers)",
    "input_transformers_cleanup": "rewrites cells before they run (input transformers)",
    "set_custom_exc": "replaces the kernel's exception handler (set_custom_exc)",
    "run_probe": "calls the answer collector's internals",
    "_publish": "calls the answer collector's internals",
}
_TAMPERING_MODULES = {
    "IPython": "imports IPython (the kernel's machinery)",
    "ipykernel": "imports ipykernel (the kernel's machinery)",
    "builtins": "imports builtins",
    "ctypes": "imports ctypes",
    "gc": "imports gc (it reaches every object of the kernel)",
    "kdcourse.answers": "imports the answer collector",
}
_ANSWER_MIME_WORD = "vnd.kdcourse"


def _module_attribute_write(node: ast.AST, modules: set[str]) -> str | None:
    """``np.allclose = ...``: an assignment to an attribute of an imported module."""
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    for target in targets:
        dotted = _dotted(target) if isinstance(target, ast.Attribute) else None
        if dotted and dotted.split(".")[0] in modules:
            return f"replaces {dotted}, a function of an imported module"
    return None


def tampering(sources: Iterable[tuple[int, str]], protected_names: Iterable[str] = ("check",)) -> list[str]:
    """What in the student-editable cells reaches for the grading machinery: one ``"cell N: ..."`` line a cell.

    Parameters
    ----------
    sources : iterable of (int, str)
        ``(cell index, source)`` of the cells a student may edit.
    protected_names : iterable of str
        Names the test cells rely on; rebinding or deleting one is reported.
    """
    findings: list[str] = []
    protected = set(protected_names)
    sources = list(sources)
    modules: set[str] = set()
    for _, source in sources:
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else ():
            modules.update(local for local, _ in _import_aliases(node) if isinstance(node, ast.Import))
    for index, source in sources:
        tree = _parse(source)
        if tree is None:
            continue
        found: list[str] = []
        if _ANSWER_MIME_WORD in source:
            found.append("publishes answer records itself")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in _TAMPERING_NAMES:
                found.append(_TAMPERING_NAMES[node.id])
            elif isinstance(node, ast.Attribute) and node.attr in _TAMPERING_NAMES:
                found.append(_TAMPERING_NAMES[node.attr])
            elif isinstance(node, ast.Attribute) and node.attr == "modules" and _dotted(node) == "sys.modules":
                found.append("touches sys.modules")
            elif isinstance(node, ast.Attribute) and node.attr == "events" and isinstance(node.value, ast.Call):
                found.append("registers kernel event hooks")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for module in _imported_modules(node):
                    for banned, why in _TAMPERING_MODULES.items():
                        if module == banned or module.startswith(banned + "."):
                            found.append(why)
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in DYNAMIC_CODE:
                    found.append(f"runs code from strings or looks names up at run time ({name})")
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in protected:
                        found.append(f"rebinds {target.id}, which the test cells use")
                write = _module_attribute_write(node, modules)
                if write:
                    found.append(write)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in protected:
                found.append(f"rebinds {node.name}, which the test cells use")
        if found:
            findings.append(f"cell {index}: {'; '.join(dict.fromkeys(found))}")
    return findings
