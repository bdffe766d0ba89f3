"""Checks of a submission's code itself, read as text (``ast``) on the trusted side; nothing is run.

The notebook's code cells are parsed **once** (:class:`NotebookCode`), as IPython would run them (its
input transformers turn magics, ``!`` commands and prompts into Python); a cell whose first line is a
cell magic is not Python and is not parsed, except the body of ``%%time``, ``%%timeit``, ``%%prun``
and ``%%capture``, which runs. Past :data:`MAX_SOURCE_CHARS` of code or :data:`MAX_NODES` syntax
nodes nothing is analysed and both checks fail closed.

* :meth:`NotebookCode.delegation` -- does a graded function hand the exercise to a library (scipy,
  scikit-learn, kdcourse's own reference, ``F.kl_div`` where it is banned)? It follows the function, and
  every name it uses that is not its own local, to **everything that may bind or change that name**:

  - ``def`` and ``class`` statements (a class with all its methods and its body);
  - every other module-level statement, also inside ``if``/``for``/``while``/``with``/``try``/``match``:
    each adds all it refers to to every name it binds in any form (tuple targets, ``for``, ``with ...
    as``, ``except ... as``, walrus, ``match`` captures) and to every name it may change (the base of
    an attribute or subscript target, the object of a method call, a name passed to a call);
  - inside any function or class body: names declared ``global`` and assigned, and global objects
    changed there (``d[k] = ...``, ``ns.x = ...``, ``lst.append(...)``), bound to that definition;
  - ``x.attr = ...`` and ``setattr(x, "attr", ...)`` anywhere also bind what any ``.attr`` (and a global
    named ``attr``) may read.

  It fails closed: when the notebook does something this cannot follow -- a star import, ``%run`` or
  another magic that runs code, code run from strings (``exec``, ``eval``, ``compile``), namespace or
  frame access (``globals()``, ``vars()``, ``sys.modules``, ``f_globals``, ``get_ipython``), a write of
  a dunder attribute (``f.__code__ = ...``), ``getattr``/``setattr`` with a computed name, an import of a
  module the grader does not know or that the notebook writes itself -- the function is reported as
  :class:`Uncheckable`, naming what made it so.
* :func:`tampering` -- does a student-editable cell reach for the grading machinery (IPython's hooks,
  events and input transformers, ``get_ipython``, ``sys.modules``, builtins, frames and tracebacks,
  dunder internals, ``gc``, ``ctypes``, code run from strings, ``getattr``/``setattr`` that hide their
  target, any binding of or reach into the test cells' ``check``, replacing functions of imported
  modules, magics other than harmless ones)? Such a submission is still scored by the judge on its
  answers, and flagged for a person to look at. (Processes, files and the network are the sandbox's
  business, not this check's.)
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from .verdict import Wrong

__all__ = ["NotebookCode", "Uncheckable", "forbid_delegation", "tampering", "DYNAMIC_CODE",
           "MAX_SOURCE_CHARS", "MAX_NODES"]

#: Above this much code (characters, all code cells together) the notebook is not analysed.
MAX_SOURCE_CHARS = 2**20
#: Above this many syntax nodes (all cells together) the notebook is not analysed (the course's
#: notebooks have about 1,200; the checks of one notebook then take well under a second).
MAX_NODES = 50_000

#: Calls that run code from strings or look names up at run time.
DYNAMIC_CODE = ("eval", "exec", "compile", "__import__", "globals", "vars", "locals", "import_module")


class Uncheckable(Wrong):
    """The code of a graded function cannot be checked: the notebook binds names in a way the grader
    cannot follow, or is too large to analyse. The test fails (closed) and a person is asked to look."""


# --- what the checks know about Python and IPython ---------------------------------------------------

#: Names whose use lets code bind any name or run code the grader cannot read.
_OPAQUE_NAMES = {
    "exec": "runs code from a string (exec)", "eval": "runs code from a string (eval)",
    "compile": "compiles code from a string (compile)", "execfile": "runs code from a file (execfile)",
    "runfile": "runs code from a file (runfile)", "globals": "writes names through globals()",
    "locals": "writes names through locals()", "vars": "reaches a namespace through vars()",
    "breakpoint": "starts a debugger (breakpoint)", "__builtins__": "touches __builtins__",
    "get_ipython": "uses get_ipython(), which can run code and set any name",
}
#: Attributes (read or written, anywhere) that reach namespaces, frames or code objects.
_OPAQUE_ATTRIBUTES = {
    "__dict__", "__globals__", "__builtins__", "__code__", "__closure__", "__defaults__", "__kwdefaults__",
    "__getattribute__", "__setattr__", "__delattr__", "__subclasses__", "__func__", "__self__", "__loader__",
    "__spec__", "__import__", "__reduce__", "__reduce_ex__", "__setstate__",
    "f_globals", "f_locals", "f_back", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "ag_frame",
    "_getframe", "currentframe", "get_ipython", "user_ns", "user_global_ns", "CodeType",
}
#: Modules whose import alone lets code reach namespaces or run code the grader cannot read.
_OPAQUE_MODULES = ("builtins", "__main__", "IPython", "ipykernel", "gc", "ctypes", "_ctypes", "runpy", "code",
                   "codeop", "pickle", "_pickle", "marshal", "dill", "cloudpickle", "shelve", "importlib",
                   "pkgutil", "zipimport", "imp")
_BUILTINS = frozenset(dir(builtins))
#: Names a notebook may import from kdcourse without delegating: the test cells' collector, which holds
#: no reference implementation (in a grading kernel the judge and the references are not even importable).
#: An attribute of it (``Checker.x``) is still resolved and judged like any other.
TRUSTED_ORIGINS = frozenset({"kdcourse.answers.Checker"})
_GETATTR_FAMILY = ("getattr", "setattr", "delattr", "attrgetter", "methodcaller")
_IMPORT_CALLS = ("__import__", "import_module")

#: Line magics that neither run code the grader cannot read nor reach the kernel (``%time`` & co.: their
#: code is read like a cell's).
_HARMLESS_LINE_MAGICS = {
    "pwd", "cd", "pushd", "popd", "dirs", "dhist", "bookmark", "env", "set_env", "who", "whos", "who_ls",
    "lsmagic", "magic", "quickref", "page", "pprint", "precision", "colors", "xmode", "tb", "pinfo", "pinfo2",
    "pdef", "pdoc", "pfile", "psource", "psearch", "pycat", "pip", "conda", "mamba", "micromamba", "uv",
    "history", "hist", "reset", "reset_selective", "xdel", "sx", "system", "sc", "killbgscripts", "clear",
    "less", "more", "man", "ls", "cat", "cp", "mkdir", "mv", "rm", "rmdir", "ll", "lf", "lk", "lx", "ldir",
    "notebook", "save", "logstart", "logon", "logoff", "logstop", "logstate", "autosave", "connect_info",
    "doctest_mode", "autoreload", "matplotlib", "config", "load_ext", "reload_ext", "unload_ext",
}
_CODE_LINE_MAGICS = {"time", "timeit", "prun"}
#: Cell magics whose body is not Python run in the kernel (shell, other languages, files, displays).
_HARMLESS_CELL_MAGICS = {
    "writefile", "file", "bash", "sh", "script", "html", "HTML", "markdown", "latex", "javascript", "js", "svg",
    "perl", "ruby", "python", "python2", "python3", "pypy", "sx", "system", "!",
}
_CODE_CELL_MAGICS = {"time", "timeit", "prun", "capture"}
_MATPLOTLIB_BACKENDS = {"", "inline", "widget", "ipympl", "notebook", "agg", "svg", "pdf"}

#: What IPython's input transformers may change: magics, shell escapes, help, autocall escapes, prompts.
_IPYTHON_SYNTAX = re.compile(r"^[ \t]*(?:[%!?;,/]|>>>|\.\.\.|In \[)|=[ \t]*[%!]|\?[ \t]*$", re.M)
_FIRST_WORD = re.compile(r"^\s*([A-Za-z_]\w*)(?:\s+(.*))?$", re.S)
_PY_FILE = re.compile(r"[\w./\\-]*\.py[cdiw]?\b")
_DOTTED_STRING = re.compile(r"^[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)*$")


@lru_cache(maxsize=1)
def _ipython_magic_names() -> frozenset[str]:
    """Names of IPython's built-in line magics (automagic runs ``run x.py`` as ``%run x.py``)."""
    names = set(_HARMLESS_LINE_MAGICS | _CODE_LINE_MAGICS) | {
        "run", "load", "loadpy", "macro", "rerun", "recall", "edit", "store", "autocall", "automagic", "alias",
        "unalias", "alias_magic", "rehashx", "debug", "pdb", "code_wrap", "gui", "pylab", "paste", "cpaste",
        "pastebin", "autoawait", "aimport", "subshell", "qtconsole"}
    try:
        from IPython.core import magics
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        return frozenset(names)
    for value in vars(magics).values():
        table = getattr(value, "magics", None) if isinstance(value, type) else None
        if isinstance(table, dict):
            names.update(table.get("line", {}))
    return frozenset(names)


@lru_cache(maxsize=1)
def _known_modules() -> frozenset[str]:
    """Top-level modules a notebook can import without writing them: the standard library and the
    installed distributions (a file beside the notebook is neither)."""
    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names) | {"kdcourse"}
    try:
        from importlib.metadata import packages_distributions

        names.update(packages_distributions())
    except Exception:  # noqa: BLE001 - without metadata only the standard library is known
        pass
    return frozenset(names)


def _quote(text: str, limit: int = 60) -> str:
    """Text a student wrote, made safe to show in a message or a review reason (words, paths, no symbols)."""
    text = " ".join(re.sub(r"[^\w .:/\\-]", " ", text).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _in_packages(dotted: str, packages: Iterable[str]) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in packages)


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


def _base(node: ast.AST) -> ast.AST:
    """The object an attribute/subscript chain starts from (``a`` of ``a.b[0].c``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(func: ast.AST) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _import_aliases(node: ast.stmt) -> Iterator[tuple[str, str]]:
    """``(local name, dotted origin)`` bound by an import statement (``origin`` starts with ``.`` when relative)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                yield alias.name.split(".")[0], alias.name.split(".")[0]
    elif isinstance(node, ast.ImportFrom):
        module = "." * (node.level or 0) + (node.module or "")
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name, f"{module}.{alias.name}" if node.module else f"{module}{alias.name}"


def _imported_modules(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        module = "." * (node.level or 0) + (node.module or "")
        yield module
        for alias in node.names:
            if alias.name != "*":
                yield f"{module}.{alias.name}" if node.module else f"{module}{alias.name}"


def _passed_names(node: ast.AST) -> Iterator[str]:
    """Names whose object an argument hands to the callee (``d``, ``d.x``, ``[d]``, ``*d``, ``lambda: d``)."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            stack.append(node.value)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            stack.extend(node.elts)
        elif isinstance(node, ast.Dict):
            stack.extend(v for v in node.values if v is not None)
        elif isinstance(node, ast.IfExp):
            stack.extend((node.body, node.orelse))
        elif isinstance(node, (ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.NamedExpr, ast.Lambda, ast.JoinedStr,
                               ast.FormattedValue, ast.Await)):
            stack.extend(ast.iter_child_nodes(node))


def _written_modules(text: str) -> Iterator[str]:
    """Module names a text that names ``.py`` files may create (``helper.py``, ``pkg/__init__.py``)."""
    for match in _PY_FILE.finditer(text):
        for part in re.split(r"[/\\]", match.group(0)):
            stem = re.sub(r"\.py[cdiw]?$", "", part)
            if stem.isidentifier():
                yield stem


# --- scopes -----------------------------------------------------------------------------------------

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _outer_parts(node: ast.AST) -> list[ast.AST]:
    """What a def, lambda or class evaluates where it is written (decorators, defaults, annotations, bases)."""
    parts: list[ast.AST] = []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        parts.extend(node.decorator_list)
    if isinstance(node, _FUNCTIONS):
        args = node.args
        parts.extend(args.defaults)
        parts.extend(d for d in args.kw_defaults if d is not None)
        if not isinstance(node, ast.Lambda):
            for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    parts.append(a.annotation)
            if node.returns is not None:
                parts.append(node.returns)
    if isinstance(node, ast.ClassDef):
        parts.extend(node.bases)
        parts.extend(k.value for k in node.keywords)
    return parts


def _inner_parts(node: ast.AST) -> list[ast.AST]:
    """What runs in the scope a def, lambda, class or comprehension creates."""
    if isinstance(node, ast.Lambda):
        return [node.body]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return list(node.body)
    if isinstance(node, _COMPREHENSIONS):
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for generator in node.generators:
            parts.extend([generator.target, generator.iter, *generator.ifs])
        return parts
    return []


@dataclass(frozen=True)
class _Scope:
    """A scope while code is walked: ``kind`` is ``module``, ``class``, ``function`` or ``comprehension``."""

    kind: str
    local: frozenset[str] = frozenset()
    declared_global: frozenset[str] = frozenset()
    parent: _Scope | None = None

    def is_local(self, name: str) -> bool:
        """Whether ``name`` read here is not a module global (class scopes are skipped, as Python does)."""
        scope: _Scope | None = self
        while scope is not None and scope.kind != "module":
            if name in scope.declared_global:
                return False
            if scope.kind != "class" and name in scope.local:
                return True
            scope = scope.parent  # a class body's names are not seen by its methods; followed as globals
        return False

    def binds_global(self, name: str) -> bool:
        """Whether storing ``name`` here binds the module global."""
        scope: _Scope | None = self
        while scope is not None and scope.kind == "comprehension":
            if name in scope.local:
                return False
            scope = scope.parent
        return scope is None or scope.kind == "module" or name in scope.declared_global


_MODULE = _Scope("module")


def _child_scope(node: ast.AST, parent: _Scope) -> _Scope:
    """The scope ``node`` (a def, lambda, class or comprehension) creates."""
    if isinstance(node, _COMPREHENSIONS):
        targets = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        return _Scope("comprehension", frozenset(targets), frozenset(), parent)
    stored: set[str] = set()
    declared: set[str] = set()
    nonlocal_: set[str] = set()
    if isinstance(node, _FUNCTIONS):
        args = node.args
        stored.update(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
        stored.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    stack = _inner_parts(node)
    while stack:
        sub = stack.pop()
        if isinstance(sub, ast.Global):
            declared.update(sub.names)
        elif isinstance(sub, ast.Nonlocal):
            nonlocal_.update(sub.names)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            stored.add(sub.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(sub.name)
            stack.extend(_outer_parts(sub))
            continue
        elif isinstance(sub, ast.Lambda):
            stack.extend(_outer_parts(sub))
            continue
        elif isinstance(sub, _COMPREHENSIONS):
            stack.extend(n.target for n in ast.walk(sub) if isinstance(n, ast.NamedExpr))
            stack.append(sub.generators[0].iter)
            continue
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            stored.update(local for local, _ in _import_aliases(sub))
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            stored.add(sub.name)
        elif isinstance(sub, (ast.MatchAs, ast.MatchStar)) and sub.name:
            stored.add(sub.name)
        elif isinstance(sub, ast.MatchMapping) and sub.rest:
            stored.add(sub.rest)
        stack.extend(ast.iter_child_nodes(sub))
    kind = "class" if isinstance(node, ast.ClassDef) else "function"
    return _Scope(kind, frozenset((stored | nonlocal_) - declared), frozenset(declared), parent)


def _walk_scoped(roots: Iterable[ast.AST], scope: _Scope = _MODULE) -> Iterator[tuple[ast.AST, _Scope]]:
    """Every node under ``roots``, parents first, with the scope it is evaluated in (iterative)."""
    stack = [(root, scope) for root in reversed(list(roots))]
    while stack:
        node, scope = stack.pop()
        yield node, scope
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef, *_COMPREHENSIONS)):
            inner = _child_scope(node, scope)
            if isinstance(node, _COMPREHENSIONS):
                # the first iterable is evaluated outside the comprehension
                children = [(c, inner) for c in _inner_parts(node)]
                children = [(c, scope if c is node.generators[0].iter else s) for c, s in children]
            else:
                children = [(c, scope) for c in _outer_parts(node)] + [(c, inner) for c in _inner_parts(node)]
            stack.extend(reversed(children))
        else:
            stack.extend((child, scope) for child in reversed(list(ast.iter_child_nodes(node))))


# --- the notebook's code, parsed once ---------------------------------------------------------------


@dataclass
class _Magic:
    """One IPython magic or shell command of a cell, and what the checks make of it."""

    name: str          # "run", "writefile", "!" for a shell command
    args: str          # the magic's line
    cell: bool         # a cell magic
    line: int
    body: str = ""     # a cell magic's body
    runs_code: bool = False
    opaque: str = ""   # why the grader cannot follow it ("" when harmless)

    def text(self) -> str:
        head = "!" if self.name == "!" else ("%%" if self.cell else "%") + _quote(self.name)
        return f"{head} {_quote(self.args)}".strip()


@dataclass
class _Cell:
    index: int | None                               # the notebook's cell index, when given
    label: str                                      # "cell 7", "input 3", "" (a single source)
    source: str
    trees: list[ast.Module] = field(default_factory=list)   # its code, and code its magics run
    magics: list[_Magic] = field(default_factory=list)
    parsed: bool = False
    unreadable: str = ""                            # why the grader could not parse code the kernel may run

    def where(self, line: int | None) -> str:
        place = f"line {line}" if line else ""
        return ", ".join(p for p in (self.label, place) if p) or "the code"


@dataclass(frozen=True)
class _Binding:
    """Code that may bind or change a name: ``nodes`` are walked (in module scope) to see what it refers to."""

    nodes: tuple[ast.AST, ...]
    cell: int
    line: int
    kind: str   # "def", "class", "bind", "store", "receiver" (a pure chain: a.b.c(...)), "argument", "attr"


def _magic_verdict(name: str, args: str, cell: bool) -> tuple[bool, str]:
    """``(runs_code, why the grader cannot follow it)`` of a magic."""
    if cell:
        if name in _CODE_CELL_MAGICS:
            return True, ""
        return False, "" if name in _HARMLESS_CELL_MAGICS else "runs code the grader cannot read"
    if name in _CODE_LINE_MAGICS:
        return True, ""
    if name not in _HARMLESS_LINE_MAGICS:
        return False, "runs code the grader cannot read"
    words = args.split()
    if name == "matplotlib" and not set(words) <= _MATPLOTLIB_BACKENDS | {"--list", "-l"}:
        return False, "loads a matplotlib backend module"
    if name in ("load_ext", "reload_ext", "unload_ext") and words != ["autoreload"]:
        return False, "loads an IPython extension (code that can hook into the kernel)"
    if name == "config" and args.strip() and not re.fullmatch(
            r"\s*InlineBackend\.\w+\s*=\s*['\"]?[\w.-]*['\"]?\s*", args):
        return False, "runs %config, which evaluates its argument as code"
    return False, ""


def _strip_magic_options(name: str, args: str) -> str:
    """The statement of ``%timeit -n1 -r1 stmt`` / ``%prun -s time stmt``."""
    if name == "time":
        return args
    with_value = {"timeit": "nrp", "prun": "sTDlr"}.get(name, "")
    words = args.split(" ")
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if len(flag) == 2 and flag[1] in with_value and words:
            words.pop(0)
    return " ".join(words)


def _transform(source: str) -> str:
    """The Python IPython runs for a cell (magics, ``!``, ``?``, prompts transformed)."""
    if not _IPYTHON_SYNTAX.search(source) and not source.lstrip("\n\r")[:1].isspace():
        return source
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        lines = []
        for line in source.splitlines():
            m = re.match(r"^(\s*)([%!])(.*)$", line)
            if m and m.group(2) == "!":
                lines.append(f"{m.group(1)}get_ipython().system({m.group(3)!r})")
            elif m:
                name, _, args = m.group(3).partition(" ")
                lines.append(f"{m.group(1)}get_ipython().run_line_magic({name!r}, {args!r})")
            else:
                lines.append(line)
        return "\n".join(lines)
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - what IPython cannot transform it cannot run either
        return source


def _magic_site(node: ast.AST) -> tuple[str, list[str]] | None:
    """``get_ipython().run_line_magic("run", "x.py")`` (what IPython makes of ``%run x.py``): the method
    and its literal arguments."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.keywords):
        return None
    shell = node.func.value
    if not (isinstance(shell, ast.Call) and isinstance(shell.func, ast.Name) and shell.func.id == "get_ipython"
            and not shell.args and not shell.keywords):
        return None
    method = node.func.attr
    args = [_literal(a) for a in node.args]
    if any(a is None for a in args):
        return None
    expected = {"run_line_magic": 2, "run_cell_magic": 3, "system": 1, "getoutput": 1}.get(method)
    if expected is None or len(args) != expected:
        return None
    return method, args


class NotebookCode:
    """The code cells of a submission (or of a live kernel's history), parsed once.

    Parameters
    ----------
    sources : iterable of str or of (int, str)
        Cell sources in execution order, or ``(cell index, source)`` pairs (the index then names the
        cell in messages). They are read as IPython runs them; cells that do not parse (they raise
        ``SyntaxError`` in the kernel too) are skipped; identical sources are read once.

    Attributes
    ----------
    too_large : str
        Why the code was not analysed (too many characters or syntax nodes), else ``""``.
    opaque : list of str
        What in the notebook lets code bind names the grader cannot see (a star import, ``%run``,
        ``exec``, ...), each with where it is.
    """

    def __init__(self, sources: Iterable[str | tuple[int, str]] = ()):
        self.cells: list[_Cell] = []
        self.too_large = ""
        self.opaque: list[str] = []
        self.aliases: dict[str, list[str]] = {}
        self.definitions: dict[str, list[_Binding]] = {}
        self.bindings: dict[str, list[_Binding]] = {}
        self.mutations: dict[str, list[_Binding]] = {}
        self.attribute_bindings: dict[str, list[_Binding]] = {}
        self.written_modules: dict[str, str] = {}   # module name -> where the notebook writes it
        self._alias_where: dict[str, str] = {}
        self._walks: dict[int, list[tuple[ast.AST, _Scope]]] = {}   # root node id -> its nodes with scopes
        items = list(sources)
        pairs = [item if isinstance(item, tuple) else (None, item) for item in items]
        total = sum(len(source) for _, source in pairs if isinstance(source, str))
        if total > MAX_SOURCE_CHARS:
            self.too_large = (f"the notebook's code is too large for the grader to check ({total / 2**20:.1f} MiB "
                              f"of code; the limit is {MAX_SOURCE_CHARS / 2**20:g} MiB)")
            return
        parsed: dict[str, _Cell] = {}
        nodes = 0
        for position, (index, source) in enumerate(pairs):
            if not isinstance(source, str):
                continue
            label = f"cell {index}" if index is not None else (f"input {position + 1}" if len(pairs) > 1 else "")
            if source in parsed:  # a re-run of the same code: same trees, read once
                twin = parsed[source]
                self.cells.append(_Cell(index, label, source, twin.trees, twin.magics, twin.parsed, twin.unreadable))
                continue
            cell = _Cell(index, label, source)
            self._read_cell(cell, source, depth=0)
            nodes += sum(1 for tree in cell.trees for _ in ast.walk(tree))
            if nodes > MAX_NODES:
                self.cells = []
                self.too_large = (f"the notebook's code is too large for the grader to check (more than "
                                  f"{MAX_NODES} syntax nodes)")
                return
            parsed[source] = cell
            self.cells.append(cell)
        seen: set[int] = set()
        for position, cell in enumerate(self.cells):
            if id(cell.trees) in seen:
                continue
            seen.add(id(cell.trees))
            if cell.unreadable:
                self.opaque.append(f"{cell.where(None)} {cell.unreadable}")
            for magic in cell.magics:
                if magic.opaque:
                    self.opaque.append(f"{cell.where(magic.line)} runs `{magic.text()}`, which {magic.opaque}")
                self._note_written(f"{magic.args}\n{magic.body}", cell.where(magic.line))
            for tree in cell.trees:
                _Scanner(self, position).module(tree)

    # --- reading cells

    def _read_cell(self, cell: _Cell, source: str, depth: int, line: int = 0) -> None:
        """Parse ``source`` into ``cell`` (its magics noted, the code of ``%%time`` & co. read too)."""
        lines = source.splitlines()
        first = next((i for i, text in enumerate(lines) if text.strip()), None)
        if first is not None and lines[first].lstrip().startswith("%%"):
            head, _, args = lines[first].lstrip()[2:].partition(" ")
            self._add_magic(cell, head, args, "\n".join(lines[first + 1:]), True, line + first + 1, depth)
            return
        text = _transform(source)
        try:
            tree = ast.parse(text)
        except (RecursionError, MemoryError):
            # Python compiles deeper nesting than its ast module can represent: the kernel may run it
            cell.parsed = True
            cell.unreadable = "is nested too deeply for the grader to read"
            return
        except (SyntaxError, ValueError):
            match = _FIRST_WORD.match(text)
            if match and "\n" not in text.strip() and match.group(1) in _ipython_magic_names():
                # IPython's automagic runs `run helper.py` as `%run helper.py`
                self._add_magic(cell, match.group(1), match.group(2) or "", "", False, line + 1, depth)
                cell.parsed = True
            return
        cell.parsed = True
        if (len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Name)
                and tree.body[0].value.id in ("autocall", "rerun", "recall")):
            # automagic: a lone `autocall` (or `rerun`) is the magic, when no variable has that name
            self._add_magic(cell, tree.body[0].value.id, "", "", False, line + 1, depth)
        if line:
            for node in ast.walk(tree):
                if hasattr(node, "lineno"):
                    node.lineno = line
        cell.trees.append(tree)
        for node in ast.walk(tree):
            site = _magic_site(node)
            if site is None:
                continue
            method, args = site
            where = (node.lineno if not line else line)
            if method == "run_line_magic":
                self._add_magic(cell, args[0], args[1], "", False, where, depth)
            elif method == "run_cell_magic":
                self._add_magic(cell, args[0], args[1], args[2], True, where, depth)
            else:
                cell.magics.append(_Magic("!", args[0], False, where))  # a shell command: the sandbox's business

    def _add_magic(self, cell: _Cell, name: str, args: str, body: str, is_cell: bool, line: int, depth: int) -> None:
        runs_code, opaque = _magic_verdict(name, args, is_cell)
        magic = _Magic(name, args, is_cell, line, body, runs_code, opaque)
        cell.magics.append(magic)
        if not runs_code:
            return
        code = body if is_cell else _strip_magic_options(name, args)
        if depth >= 3:
            magic.opaque = "nests magics too deeply for the grader to read"
            return
        before = len(cell.trees)
        self._read_cell(cell, code, depth + 1, line)
        if len(cell.trees) == before and code.strip():
            magic.opaque = "runs code the grader cannot parse"

    def _note_written(self, text: str, where: str) -> None:
        for module in _written_modules(text):
            self.written_modules.setdefault(module, where)

    # --- what the checks ask

    @property
    def empty(self) -> bool:
        """No code was read (and none was refused as too large)."""
        return not self.too_large and not any(cell.parsed for cell in self.cells)

    def where(self, cell: int, line: int | None) -> str:
        return self.cells[cell].where(line) if 0 <= cell < len(self.cells) else "the code"

    def resolve(self, dotted: str) -> list[str]:
        """``F.kl_div`` -> ``["torch.nn.functional.kl_div"]`` through the notebook's imports (all of them)."""
        head, _, rest = dotted.partition(".")
        return [f"{origin}.{rest}" if rest else origin for origin in self.aliases.get(head, [])]

    def defines(self, name: str) -> bool:
        return name in self.definitions

    def module_problem(self, origin: str) -> str | None:
        """Why an import of ``origin`` cannot be followed (a relative import, a module the notebook writes
        itself, one the grader does not know), else ``None``."""
        top = origin.split(".")[0]
        if origin.startswith(".") or not top:
            return f"a relative import ({origin})"
        if top in self.written_modules:
            return f"{origin}, a module the notebook writes itself ({self.written_modules[top]})"
        if top not in _known_modules():
            return f"{origin}, a module the grader does not know (a file beside the notebook?)"
        return None

    def walked(self, root: ast.AST) -> list[tuple[ast.AST, _Scope]]:
        """Every node under ``root`` with its scope, computed once for all the checks of the notebook."""
        nodes = self._walks.get(id(root))
        if nodes is None:
            nodes = self._walks[id(root)] = list(_walk_scoped([root]))
        return nodes

    def import_only(self, name: str) -> bool:
        return name in self.aliases and name not in self.definitions and name not in self.bindings

    def def_only(self, name: str) -> bool:
        """Bound only by ``def`` statements: nothing but a dunder write (caught) changes what it does."""
        return (name in self.definitions and all(b.kind == "def" for b in self.definitions[name])
                and name not in self.bindings and name not in self.aliases and name not in self.attribute_bindings)

    def delegation(self, function: str, banned_names: Iterable[str] = (), banned_packages: Iterable[str] = (),
                   allowed: Iterable[str] = (), banned_attributes: Iterable[str] = ()) -> str | None:
        """What in ``function`` (or in what it uses) hands the exercise to a banned name or package.

        Parameters
        ----------
        function : str
            The graded function's name.
        banned_names : iterable of str
            Names that do the exercise (``"kl_div"``, ``"softmax"``): banned as a global name, an
            attribute or a method, wherever they come from.
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
            A description such as ``"rel_entr (from scipy.special.rel_entr) (cell 3, line 2)"`` or
            ``"helper → F.kl_div (cell 4, line 2)"``; ``None`` when nothing is found. When the notebook
            does not define ``function`` itself but binds the name to something else (``from lib import
            function``, ``function = lib.function``), that binding is what is judged.

        Raises
        ------
        Uncheckable
            Nothing banned was found, but the code is too large to analyse, or binds names in a way the
            grader cannot follow (the message names it and where it is).
        """
        if self.too_large:
            raise Uncheckable(f"{function} cannot be checked: {self.too_large}. Remove the large cells and "
                              "submit again.")
        finder = _Finder(self, tuple(banned_names), tuple(banned_packages), tuple(allowed), tuple(banned_attributes))
        found = finder.search(function)
        if found is not None:
            return found
        reasons = list(dict.fromkeys(self.opaque + finder.uncheckable))
        if reasons:
            shown = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else "")
            raise Uncheckable(
                f"{function} cannot be checked: {shown}. The grader reads your code to make sure {function} "
                "writes the formula itself, and it cannot follow this; define it with a plain def in a "
                "notebook cell, without it.")
        return None


class _Scanner:
    """Fills a :class:`NotebookCode`'s tables from one parsed cell."""

    def __init__(self, code: NotebookCode, cell: int):
        self.code = code
        self.cell = cell

    def where(self, node: ast.AST) -> str:
        return self.code.where(self.cell, getattr(node, "lineno", None))

    def add(self, table: dict[str, list[_Binding]], name: str, nodes: tuple[ast.AST, ...], kind: str) -> None:
        table.setdefault(name, []).append(_Binding(nodes, self.cell, getattr(nodes[0], "lineno", 0), kind))

    def module(self, tree: ast.Module) -> None:
        stack = list(reversed(tree.body))
        while stack:
            statement = stack.pop()
            if isinstance(statement, (ast.For, ast.AsyncFor)):
                self.header(statement, (statement.target, statement.iter))
            elif isinstance(statement, (ast.With, ast.AsyncWith)):
                for item in statement.items:
                    self.header(statement, (item.context_expr,) + ((item.optional_vars,) if item.optional_vars else ()))
            elif isinstance(statement, (ast.If, ast.While)):
                self.header(statement, (statement.test,))
            elif isinstance(statement, ast.Match):
                self.header(statement, (statement.subject, *(c.pattern for c in statement.cases),
                                        *(c.guard for c in statement.cases if c.guard)))
            elif isinstance(statement, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                for handler in statement.handlers:
                    if handler.name:  # the exception may come from anywhere in the try
                        self.add(self.code.bindings, handler.name, (statement,), "bind")
                    if handler.type is not None:
                        self.header(statement, (handler.type,))
            else:
                self.statement(statement)
                continue
            children = []
            for name in ("body", "orelse", "finalbody"):
                children.extend(getattr(statement, name, []) or [])
            for handler in getattr(statement, "handlers", []) or []:
                children.extend(handler.body)
            for case in getattr(statement, "cases", []) or []:
                children.extend(case.body)
            stack.extend(reversed(children))

    def header(self, statement: ast.stmt, parts: tuple[ast.AST, ...]) -> None:
        """The part of a compound statement that binds (``for x in ...``, ``with ... as x``)."""
        self.scan(parts, parts)

    def statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kind = "class" if isinstance(statement, ast.ClassDef) else "def"
            self.add(self.code.definitions, statement.name, (statement,), kind)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            for local, origin in _import_aliases(statement):
                self.code.aliases.setdefault(local, []).append(origin)
                self.code._alias_where.setdefault(local, self.where(statement))
            if isinstance(statement, ast.ImportFrom) and any(a.name == "*" for a in statement.names):
                self.code.opaque.append(f"{self.where(statement)} imports every name of "
                                        f"{'.' * (statement.level or 0)}{statement.module or ''} (import *)")
        self.scan((statement,), (statement,))

    def opaque(self, node: ast.AST, what: str) -> None:
        self.code.opaque.append(f"{self.where(node)} {what}")

    def scan(self, roots: tuple[ast.AST, ...], binder: tuple[ast.AST, ...]) -> None:
        """Bindings, changes and opaque constructs under ``roots``; ``binder`` is the code that is walked
        when a name they bind is followed."""
        code = self.code
        called: set[int] = set()
        exempt: set[int] = set()
        for node, scope in _walk_scoped(roots):
            if id(node) in exempt:
                continue
            if isinstance(node, ast.Call):
                site = _magic_site(node)
                if site is not None:
                    exempt.update(id(n) for n in ast.walk(node))
                    continue
                called.add(id(node.func))
                self.call(node, scope, binder)
            elif isinstance(node, ast.Name):
                if isinstance(node.ctx, (ast.Store, ast.Del)):
                    if scope.binds_global(node.id):
                        self.add(code.bindings, node.id, binder, "bind")
                elif node.id in _OPAQUE_NAMES and not scope.is_local(node.id):
                    self.opaque(node, _OPAQUE_NAMES[node.id])
                elif node.id in _GETATTR_FAMILY + _IMPORT_CALLS and id(node) not in called:
                    self.opaque(node, f"uses {node.id} without calling it (it can hide what it reaches)")
            elif isinstance(node, ast.Attribute):
                self.attribute(node, scope, binder, id(node) in called)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.changed(node.value, scope, binder, "store", node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if scope.kind != "module" and scope.binds_global(node.name):
                    self.add(code.bindings, node.name, binder, "bind")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for local, _origin in _import_aliases(node):
                    if scope.kind != "module" and scope.binds_global(local):
                        self.add(code.bindings, local, binder, "bind")
                for module in _imported_modules(node):
                    if _in_packages(module, _OPAQUE_MODULES):
                        self.opaque(node, f"imports {module}")
                        break
            elif isinstance(node, ast.Compare):
                if isinstance(node.left, ast.Name) and node.left.id == "__name__":
                    exempt.update(id(c) for c in node.comparators if _literal(c) == "__main__")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value == "__main__" or node.value in _OPAQUE_ATTRIBUTES:
                    self.opaque(node, f"names {node.value!r} in a string")
                if ".py" in node.value:
                    code._note_written(node.value, self.where(node))
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name and scope.binds_global(node.name):
                self.add(code.bindings, node.name, binder, "bind")
            elif isinstance(node, ast.MatchMapping) and node.rest and scope.binds_global(node.rest):
                self.add(code.bindings, node.rest, binder, "bind")

    def changed(self, target: ast.AST, scope: _Scope, binder: tuple[ast.AST, ...], kind: str, at: ast.AST) -> None:
        """``target``'s object may change: its base name (if global) gets ``binder``."""
        base = _base(target)
        if isinstance(base, ast.Name):
            if not scope.is_local(base.id):
                self.add(self.code.mutations, base.id, binder, kind)
        elif kind == "store":
            self.opaque(at, "writes into an object the grader cannot follow (not a name)")

    def attribute(self, node: ast.Attribute, scope: _Scope, binder: tuple[ast.AST, ...], called: bool) -> None:
        if node.attr in _OPAQUE_ATTRIBUTES or (node.attr == "modules" and not called):
            self.opaque(node, f"reaches {_dotted(node) or '...' + '.' + node.attr}")
        if node.attr in _IMPORT_CALLS + ("attrgetter", "methodcaller") and not called:
            self.opaque(node, f"uses {node.attr} without calling it (it can hide what it reaches)")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            if _is_dunder(node.attr):
                self.opaque(node, f"replaces {_dotted(node) or node.attr}")
            self.add(self.code.attribute_bindings, node.attr, binder, "attr")
            self.changed(node.value, scope, binder, "store", node)

    def call(self, node: ast.Call, scope: _Scope, binder: tuple[ast.AST, ...]) -> None:
        name = _call_name(node.func)
        builtin = isinstance(node.func, ast.Name) and name in ("getattr", "setattr", "delattr")
        if builtin or name in ("attrgetter", "methodcaller"):
            index = 1 if builtin else 0
            attr = _literal(node.args[index]) if len(node.args) > index else None
            if attr is None:
                self.opaque(node, f"calls {name} with a computed name")
            elif attr in _OPAQUE_ATTRIBUTES or attr == "modules" or (_is_dunder(attr) and name != "getattr"):
                self.opaque(node, f"calls {name}(..., {attr!r})")
            elif name == "setattr":
                self.add(self.code.attribute_bindings, attr, binder, "attr")
                self.changed(node.args[0], scope, binder, "store", node)
        if name in _IMPORT_CALLS:
            module = _literal(node.args[0]) if node.args else None
            if module is None:
                self.opaque(node, f"calls {name} with a computed module name")
            elif _in_packages(module, _OPAQUE_MODULES):
                self.opaque(node, f"imports {module}")
        if isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            base = _base(receiver)
            if isinstance(base, ast.Name) and not scope.is_local(base.id):
                pure = _dotted(receiver) is not None and not any(_is_dunder(p) for p in _dotted(receiver).split("."))
                self.add(self.code.mutations, base.id, binder, "receiver" if pure else "argument")
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            for passed in _passed_names(argument):
                if not scope.is_local(passed):
                    self.add(self.code.mutations, passed, binder, "argument")


@dataclass
class _Finder:
    """Follows a graded function through everything that may bind what it uses (a worklist, depth first)."""

    code: NotebookCode
    banned_names: tuple[str, ...]
    banned_packages: tuple[str, ...]
    allowed: tuple[str, ...]
    banned_attributes: tuple[str, ...] = ()
    uncheckable: list[str] = field(default_factory=list)

    def banned_member(self, name: str | None) -> bool:
        """Banned as an attribute, a method or an imported name."""
        return name in self.banned_names or name in self.banned_attributes

    def search(self, function: str) -> str | None:
        self.visited_names: set[tuple[str, bool]] = {(function, False), (function, True)}
        self.visited_nodes: set[int] = set()
        # ("name", name, prefix, via an attribute, where it is used) or ("code", binding, prefix)
        self.stack: list[tuple] = []
        found = self.bound_to(function, "", root=True)
        while found is None and self.stack:
            item = self.stack.pop()
            if item[0] == "name":
                found = self.name_finding(*item[1:])
            else:
                queued: list[tuple] = []
                found = self.walk(*item[1:], queued)
                self.stack.extend(reversed(queued))
        return found

    def name_finding(self, name: str, prefix: str, via_attribute: bool, where: str) -> str | None:
        if name in self.banned_names:
            return f"{prefix}{name} ({where})"
        if name in self.allowed:
            return None
        return self.bound_to(name, prefix, via_attribute)

    def bound_to(self, name: str, prefix: str, via_attribute: bool = False, root: bool = False) -> str | None:
        """Check ``name``'s imports, and queue everything else that binds or changes it."""
        code = self.code
        for origin in code.aliases.get(name, []):
            if origin in TRUSTED_ORIGINS:
                continue
            if _in_packages(origin, self.banned_packages) or self.banned_member(origin.split(".")[-1]):
                where = code._alias_where.get(name, "")
                return f"{prefix}{origin if root else f'{name} (from {origin})'} ({where})"
            problem = code.module_problem(origin)
            if problem:
                self.uncheckable.append(f"{name} comes from {problem}")
        label = (lambda sign: prefix) if root else (lambda sign: f"{prefix}{name} {sign} ")
        direct = [(b, label("→")) for b in code.definitions.get(name, [])]
        direct += [(b, label("=")) for b in code.bindings.get(name, [])]
        direct += [(b, label("=")) for b in code.attribute_bindings.get(name, [])]
        untouched_builtin = name in _BUILTINS and not (name in code.definitions or name in code.bindings
                                                      or name in code.aliases)
        if (via_attribute or not code.def_only(name)) and not untouched_builtin:
            import_only = code.import_only(name)
            direct += [(b, label("=")) for b in code.mutations.get(name, [])
                       if not (import_only and b.kind == "receiver")]
        # all of this name's own code first, then what that code uses
        queued: list[tuple] = []
        for binding, binding_prefix in direct:
            found = self.walk(binding, binding_prefix, queued)
            if found:
                return found
        self.stack.extend(reversed(queued))
        return None

    def walk(self, binding: _Binding, prefix: str, queued: list[tuple]) -> str | None:
        """The first banned use in ``binding``'s code; what it uses goes to ``queued``."""
        code = self.code
        roots = [n for n in binding.nodes if id(n) not in self.visited_nodes]
        self.visited_nodes.update(id(n) for n in roots)
        if not roots:
            return None
        docstrings: set[int] = set()

        def where(node: ast.AST) -> str:
            return code.where(binding.cell, getattr(node, "lineno", None))

        for node, scope in (pair for root in roots for pair in code.walked(root)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and _literal(first.value) is not None:
                    docstrings.add(id(first.value))
            found = self.node_finding(node, scope, where)
            if found:
                return f"{prefix}{found} ({where(node)})"
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and not scope.is_local(node.id):
                if node.id in self.banned_names and (node.id, False) not in self.visited_names:
                    return f"{prefix}{node.id} ({where(node)})"
                self.queue_name(queued, node.id, prefix, False, node, where)
            elif isinstance(node, ast.Attribute):
                dotted = _dotted(node)
                if dotted is not None and not scope.is_local(dotted.split(".")[0]):
                    self.queue_name(queued, dotted.split(".")[0], prefix, True, node, where)
                for other in code.attribute_bindings.get(node.attr, []):
                    if any(id(n) not in self.visited_nodes for n in other.nodes):
                        queued.append(("code", other, f"{prefix}.{node.attr} = "))
            elif isinstance(node, ast.Constant) and id(node) not in docstrings:
                found = self.string_finding(node.value)
                if found:
                    return f"{prefix}{found} ({where(node)})"
        return None

    def queue_name(self, queued: list, name: str, prefix: str, via_attribute: bool, node: ast.AST, where) -> None:
        if (name, via_attribute) not in self.visited_names:
            self.visited_names.add((name, via_attribute))
            queued.append(("name", name, prefix, via_attribute, where(node)))

    def string_finding(self, value: object) -> str | None:
        """A string that names a banned member or package (``attrgetter("kl_div")``, ``resolve_name(...)``)."""
        if not isinstance(value, str) or len(value) > 200 or not _DOTTED_STRING.match(value):
            return None
        parts = re.split(r"[.:]", value)
        if any(self.banned_member(p) for p in parts) or _in_packages(value.replace(":", "."), self.banned_packages):
            return f"{value!r} (named in a string)"
        return None

    def dotted_finding(self, dotted: str, local: bool) -> str | None:
        parts = dotted.split(".")
        resolutions = [] if local else self.code.resolve(dotted)
        if any(self.banned_member(part) for part in parts[1:]):
            return dotted if not resolutions else f"{dotted} (from {resolutions[0]})"
        for resolved in resolutions:
            if _in_packages(resolved, self.banned_packages):
                return dotted if resolved == dotted else f"{dotted} (from {resolved})"
        return None

    def node_finding(self, node: ast.AST, scope: _Scope, where) -> str | None:
        code = self.code
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = list(_imported_modules(node))
            for module in modules:
                if _in_packages(module, self.banned_packages) or self.banned_member(module.split(".")[-1]):
                    return f"{module} (imported inside the function)"
            for module in modules[:1] if isinstance(node, ast.ImportFrom) else modules:
                problem = code.module_problem(module)
                if problem:
                    self.uncheckable.append(f"{where(node)} imports {problem}")
        elif isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in DYNAMIC_CODE:
                literal = _literal(node.args[0]) if node.args else None
                if literal is not None and name in _IMPORT_CALLS:
                    if _in_packages(literal, self.banned_packages):
                        return f"{literal} (imported inside the function)"
                    problem = code.module_problem(literal)
                    if problem:
                        self.uncheckable.append(f"{where(node)} imports {problem}")
                else:
                    return f"{name} (code run from a string hides what it calls)"
            if name in _GETATTR_FAMILY:
                index = 1 if name in ("getattr", "setattr", "delattr") else 0
                attr = node.args[index] if len(node.args) > index else None
                if attr is not None and _literal(attr) is None:
                    return f"{name} with a computed name (it hides what is called)"
                if attr is not None and self.banned_member(_literal(attr)):
                    return _literal(attr)
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is None:
                if self.banned_member(node.attr):
                    return node.attr
            else:
                found = self.dotted_finding(dotted, scope.is_local(dotted.split(".")[0]))
                if found:
                    return found
        return None


def forbid_delegation(code: NotebookCode, function: str, banned_names: Iterable[str] = (),
                      banned_packages: Iterable[str] = (), allowed: Iterable[str] = (),
                      banned_attributes: Iterable[str] = ()) -> None:
    """Raise :class:`~kdcourse.judge.verdict.Wrong` when ``function`` hands the exercise to a library.

    The arguments are those of :meth:`NotebookCode.delegation`; :class:`Uncheckable` (a ``Wrong``) when
    the code cannot be checked.
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
    "input_transformer_manager": "rewrites cells before they run (input transformers)",
    "ast_transformers": "rewrites cells before they run (input transformers)",
    "prefilter_manager": "rewrites cells before they run (input transformers)",
    "set_custom_exc": "replaces the kernel's exception handler (set_custom_exc)",
    "showtraceback": "replaces the kernel's exception handler (showtraceback)",
    "run_probe": "calls the answer collector's internals",
    "_publish": "calls the answer collector's internals",
    "meta_path": "changes how modules are imported (sys.meta_path)",
    "path_hooks": "changes how modules are imported (sys.path_hooks)",
    "path_importer_cache": "changes how modules are imported (sys.path_importer_cache)",
    "displayhook": "replaces an interpreter hook (displayhook)",
    "excepthook": "replaces an interpreter hook (excepthook)",
    "breakpointhook": "replaces an interpreter hook (breakpointhook)",
    "addaudithook": "installs an audit hook (sys.addaudithook)",
    "CodeType": "builds code objects (types.CodeType)",
    "FunctionType": "builds functions from code objects (types.FunctionType)",
}
#: Frames and tracebacks: from any of them the kernel's namespaces are one step away.
_FRAME_ATTRIBUTES = {"tb_frame", "tb_next", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "gi_frame",
                     "cr_frame", "ag_frame", "__traceback__", "exc_info", "last_traceback", "last_value", "last_exc",
                     "getouterframes", "getinnerframes", "getframeinfo", "walk_stack", "walk_tb"}
#: Dunder attributes of the frame/code/globals/class family.
_TAMPERING_DUNDERS = {"__globals__", "__code__", "__closure__", "__builtins__", "__dict__", "__class__", "__bases__",
                      "__base__", "__mro__", "__subclasses__", "__func__", "__self__", "__getattribute__",
                      "__setattr__", "__delattr__", "__defaults__", "__kwdefaults__", "__loader__", "__spec__",
                      "__import__", "__reduce__", "__reduce_ex__", "__init_subclass__", "__wrapped__"}
_TAMPERING_MODULES = {
    "IPython": "imports IPython (the kernel's machinery)",
    "ipykernel": "imports ipykernel (the kernel's machinery)",
    "builtins": "imports builtins",
    "ctypes": "imports ctypes",
    "gc": "imports gc (it reaches every object of the kernel)",
    "kdcourse.answers": "imports the answer collector",
    "kdcourse.judge": "imports the grader's judge",
    "kdcourse.grading": "imports the grader",
    "__main__": "imports __main__ (the kernel's namespace)",
    "importlib": "imports importlib (imports that hide what they load)",
    "runpy": "imports runpy (runs code from files)",
    "code": "imports code (an interpreter inside the kernel)",
    "codeop": "imports codeop (compiles code from strings)",
    "pickle": "imports pickle (it can run code while loading)",
    "_pickle": "imports pickle (it can run code while loading)",
    "marshal": "imports marshal (code objects from bytes)",
    "dill": "imports dill (it can run code while loading)",
    "cloudpickle": "imports cloudpickle (it can run code while loading)",
    "shelve": "imports shelve (it can run code while loading)",
    "pkgutil": "imports pkgutil (imports that hide what they load)",
    "jupyter_client": "imports jupyter_client (the kernel's messaging)",
    "zmq": "imports zmq (the kernel's messaging)",
}
_ANSWER_WORDS = re.compile(r"vnd\.kdcourse|ANSWERS_MIME|kdcourse\.(?:answers|judge|grading)|\bChecker\b|\bprobes\b")
_MODULES_WORD = re.compile(r"\bmodules\b")
_IPYTHON_PATH = re.compile(r"(?i)\.ipython(?=[/\\]|$)")
_HISTORY_NAMES = {"In", "Out", "_ih", "_oh", "_dh"}


class _TamperingScan:
    """The findings of one editable cell."""

    def __init__(self, code: NotebookCode, imported: set[str], protected: set[str]):
        self.code = code
        self.imported = imported
        self.protected = protected
        self.found: list[str] = []

    def add(self, what: str) -> None:
        self.found.append(what)

    def word(self, text: str, where: str) -> None:
        """The words of an identifier or a string that name the grading machinery."""
        if re.search(r"(?i)ipython", _IPYTHON_PATH.sub("", text)):
            self.add(_TAMPERING_NAMES["get_ipython"] if "get_ipython" in text else f"reaches for IPython ({_quote(where)})")
        match = _ANSWER_WORDS.search(text)
        if match:
            word = match.group(0)
            self.add("publishes answer records itself" if word in ("vnd.kdcourse", "ANSWERS_MIME")
                     else f"reaches for the answer collector ({word})")

    def identifier(self, name: str) -> None:
        if name in _TAMPERING_NAMES:
            self.add(_TAMPERING_NAMES[name])
        elif name in _FRAME_ATTRIBUTES:
            self.add(f"reaches the interpreter's frames ({name})")
        elif name in _TAMPERING_DUNDERS:
            self.add(f"reaches the interpreter's internals ({name})")
        elif name in ("modules", "_modules"):
            self.add(f"touches sys.modules ({name})")
        elif name in ("events", "callbacks"):
            self.add(f"registers kernel event hooks ({name})")
        self.word(name, name)

    def scan(self, tree: ast.Module) -> None:
        called: set[int] = set()
        name_read: set[int] = set()
        skip: set[int] = set()
        for node, scope in _walk_scoped(tree.body):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Call):
                if _magic_site(node) is not None:
                    skip.update(id(n) for n in ast.walk(node))
                    continue
                called.add(id(node.func))
                self.call(node)
            elif isinstance(node, ast.Name):
                self.name(node, id(node) in called, scope)
            elif isinstance(node, ast.Attribute):
                if node.attr in ("__name__", "__qualname__"):
                    name_read.add(id(node.value))
                self.attribute(node, id(node) in called, id(node) in name_read)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name in self.protected:
                    self.add(f"rebinds {node.name}, which the test cells use")
                self.identifier(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for name in set(node.names) & self.protected:
                    self.add(f"rebinds {name}, which the test cells use (global {name})")
            elif isinstance(node, ast.ExceptHandler) and node.name in self.protected:
                self.add(f"rebinds {node.name}, which the test cells use")
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name in self.protected:
                self.add(f"rebinds {node.name}, which the test cells use")
            elif isinstance(node, ast.keyword) and node.arg:
                self.word(node.arg, node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
                if _MODULES_WORD.search(text):
                    self.add("touches sys.modules (a string names modules)")
                if text in _TAMPERING_DUNDERS or text in _FRAME_ATTRIBUTES or text in _TAMPERING_NAMES:
                    self.identifier(text)
                self.word(text, "a string")

    def name(self, node: ast.Name, called: bool, scope: _Scope) -> None:
        if node.id in self.protected:
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                self.add(f"rebinds {node.id}, which the test cells use")
            elif not called:
                self.add(f"uses {node.id} other than calling it")
        if node.id in DYNAMIC_CODE or node.id in ("execfile", "runfile", "breakpoint"):
            self.add(f"runs code from strings or looks names up at run time ({node.id})")
        elif node.id in _GETATTR_FAMILY and not called:
            self.add(f"uses {node.id} without calling it (it can hide what it reaches)")
        elif node.id in _HISTORY_NAMES and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.add(f"edits the kernel's input history ({node.id})")
        self.identifier(node.id)

    def attribute(self, node: ast.Attribute, called: bool, name_read: bool) -> None:
        base = _base(node.value)
        dotted = _dotted(node) or node.attr
        if isinstance(base, ast.Name) and base.id in self.protected:
            self.add(f"reaches into {base.id} ({dotted})")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            if node.attr in self.protected:
                self.add(f"rebinds {node.attr}, which the test cells use ({dotted})")
            if isinstance(base, ast.Name) and base.id in self.imported:
                self.add(f"replaces {dotted}, a function of an imported module")
            if isinstance(base, ast.Name) and base.id in _HISTORY_NAMES:
                self.add(f"edits the kernel's input history ({dotted})")
        if node.attr in ("modules", "_modules", "named_modules") and called and not (
                isinstance(base, ast.Name) and base.id in self.imported):
            pass  # nn.Module.modules(): a method of a network, not sys.modules
        elif node.attr == "__class__" and name_read:
            pass  # type(x).__name__
        else:
            self.identifier(node.attr)
        if node.attr == "register" and isinstance(node.value, (ast.Name, ast.Attribute)) and \
                (_dotted(node.value) or "").split(".")[-1] == "events":
            self.add("registers kernel event hooks (events.register)")
        if isinstance(base, ast.Name) and base.id in _HISTORY_NAMES and called and node.attr in (
                "append", "extend", "insert", "pop", "clear", "remove", "__setitem__", "update"):
            self.add(f"edits the kernel's input history ({dotted})")
        for resolved in self.code.resolve(dotted) if _dotted(node) else []:
            if _in_packages(resolved, ("inspect.stack", "inspect.trace", "inspect.getmodule", "sys.exception")):
                self.add(f"reaches the interpreter's frames ({resolved})")

    def call(self, node: ast.Call) -> None:
        name = _call_name(node.func)
        if name in _GETATTR_FAMILY:
            index = 1 if name in ("getattr", "setattr", "delattr") else 0
            target = node.args[0] if index == 1 and node.args else None
            attr = node.args[index] if len(node.args) > index else None
            literal = _literal(attr)
            if attr is None or literal is None:
                self.add(f"calls {name} with a computed name (it can hide what it reaches)")
            else:
                self.identifier(literal)
            if target is not None:
                base = _base(target)
                if isinstance(base, ast.Name) and base.id in self.imported:
                    self.add(f"calls {name} on the imported module {base.id}"
                             + (f" ({literal})" if literal else ""))
                if any(isinstance(n, ast.Name) and n.id in self.protected for n in ast.walk(target)):
                    self.add(f"calls {name} on check")
            if name == "setattr" and literal in self.protected:
                self.add(f"rebinds {literal}, which the test cells use (setattr)")
        if name in ("__import__", "import_module"):
            module = _literal(node.args[0]) if node.args else None
            if module is not None:
                self.module(module)
        if name == "register" and any(_literal(a) in ("pre_run_cell", "post_run_cell", "pre_execute",
                                                      "post_execute", "shell_initialized") for a in node.args):
            self.add("registers kernel event hooks (events.register)")

    def imports(self, node: ast.Import | ast.ImportFrom) -> None:
        for local, _ in _import_aliases(node):
            if local in self.protected:
                self.add(f"rebinds {local}, which the test cells use (import)")
        for module in _imported_modules(node):
            self.module(module)

    def module(self, module: str) -> None:
        for banned, why in _TAMPERING_MODULES.items():
            if module == banned or module.startswith(banned + "."):
                self.add(why)
        self.word(module, module)


def tampering(sources: NotebookCode | Iterable[tuple[int, str]], protected_names: Iterable[str] = ("check",),
              editable: Iterable[int] | None = None) -> list[str]:
    """What in the student-editable cells reaches for the grading machinery: one ``"cell N: ..."`` line a cell.

    Parameters
    ----------
    sources : NotebookCode or iterable of (int, str)
        The notebook's code, parsed once (then ``editable`` names the cells a student may edit), or
        ``(cell index, source)`` of the editable cells.
    protected_names : iterable of str
        Names the test cells rely on; binding one in any form, writing or reading its attributes, or
        using it other than by calling it is reported.
    editable : iterable of int, optional
        The indices of the cells to inspect (default: every cell of ``sources``).

    Returns
    -------
    list of str
        One line a cell that reaches for the machinery; a single line saying the code is too large to
        check when it is (the check fails closed).
    """
    code = sources if isinstance(sources, NotebookCode) else NotebookCode(list(sources))
    if code.too_large:
        return [code.too_large]
    editable = None if editable is None else set(editable)
    imported = set(code.aliases)
    findings: list[str] = []
    for cell in code.cells:
        if (editable is not None and cell.index not in editable) or not (cell.parsed or cell.magics):
            continue
        scan = _TamperingScan(code, imported, set(protected_names))
        if _ANSWER_MIME_WORD in cell.source:
            scan.add("publishes answer records itself")
        if cell.unreadable:
            scan.add(f"its code {cell.unreadable}")
        for magic in cell.magics:
            if magic.opaque:
                scan.add(f"runs `{magic.text()}`, a magic that {magic.opaque}")
        for tree in cell.trees:
            scan.scan(tree)
        if scan.found:
            label = cell.label or "the code"
            findings.append(f"{label}: {'; '.join(dict.fromkeys(scan.found))}")
    return findings


_ANSWER_MIME_WORD = "vnd.kdcourse"
