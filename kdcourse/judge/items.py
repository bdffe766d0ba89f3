"""The judge's model of a test: what to collect (answers and their test inputs) and how to decide.

An :class:`Item` is one test cell (its ``grade_id``). It names the answers the cell collects, each an
:class:`Answer` with a probe kind and its *visible* test inputs; hidden inputs come from the
assignment's instructor file. The item's ``judge`` function receives the decoded :class:`Results` and a
:class:`Context` and raises :class:`~kdcourse.judge.verdict.Wrong` or
:class:`~kdcourse.judge.verdict.Unanswered`, or returns the message shown when the test passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kdcourse.answers.plain import MalformedAnswer, Value, decode

from .static import NotebookCode
from .verdict import Unanswered, Wrong

__all__ = ["Answer", "Item", "Context", "Call", "Step", "Results", "decode_answers", "PROBE_KINDS"]

PROBE_KINDS = ("value", "call", "loss", "step")


@dataclass(frozen=True)
class Answer:
    """One answer a test collects.

    Parameters
    ----------
    name : str
        The variable or function name the test cell passes (``check(..., name=name)``).
    probe : str
        ``"value"``, ``"call"``, ``"loss"`` or ``"step"`` (see :mod:`kdcourse.answers.probes`).
    args : tuple of str
        How each argument of a case is converted before the call (``"array"``, ``"tensor"``, ...).
    cases : tuple
        The visible test inputs: one argument list per case (``step``: one dict per case).
    grads : tuple of int
        For ``loss``: the arguments whose gradients are collected.
    required : bool
        ``False`` for a function collected only so that an earlier mistake is carried forward. The test cell does
        not pass it: the kernel's checker takes it from the notebook's namespace. When it is missing, not
        a function or raises ``NotImplementedError``, the test is not unanswered because of it; its calls
        are simply empty.
    """

    name: str
    probe: str = "value"
    args: tuple[str, ...] = ()
    cases: tuple = ()
    grads: tuple[int, ...] = ()
    required: bool = True

    def __post_init__(self):
        if self.probe not in PROBE_KINDS:
            raise ValueError(f"probe must be one of {PROBE_KINDS} (got {self.probe!r})")

    def plan(self, hidden: list | None = None) -> dict:
        """The probe sent to the kernel: visible cases, then the hidden ones."""
        probe: dict[str, Any] = {"probe": self.probe}
        if self.probe != "value":
            probe["cases"] = _plain_cases(list(self.cases) + list(hidden or []))
            probe["args"] = list(self.args)
        if self.grads:
            probe["grads"] = list(self.grads)
        if not self.required:
            probe["from_namespace"] = True
        return probe


def _plain_cases(cases: list) -> list:
    """Tuples to lists, so the plan is exactly what JSON gives back."""
    def plain(x):
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x
    return plain(cases)


@dataclass(frozen=True)
class Call:
    """One call of a student's function: its (trusted) arguments and what happened."""

    args: list
    returned: Value | None = None
    raised: tuple[str, str] | None = None   # (exception type, message)
    grads: Mapping[int, Value] | None = None
    grad_problem: str = ""                  # why no gradients were collected
    hidden: bool = False

    @property
    def raised_type(self) -> str:
        return self.raised[0] if self.raised else ""


@dataclass(frozen=True)
class Step:
    """One run of a student's training step on a tiny scenario (see :mod:`kdcourse.answers.probes`)."""

    case: dict
    returned: list[Value]
    raised: tuple[str, str] | None
    teacher_changed: bool
    teacher_grad: bool
    update: Value | None
    hidden: bool = False

    @property
    def raised_type(self) -> str:
        return self.raised[0] if self.raised else ""


@dataclass(frozen=True)
class Results:
    """The decoded answers of one test: ``values[name]`` for value answers, ``calls[name]`` otherwise."""

    values: Mapping[str, Value] = field(default_factory=dict)
    calls: Mapping[str, list] = field(default_factory=dict)

    def value(self, name: str) -> Value:
        return self.values[name]


@dataclass(frozen=True)
class Context:
    """What the judge knows besides the answers.

    Attributes
    ----------
    assignment, grade_id : str
    full : bool
        ``True`` when grading (hidden inputs, answer keys); ``False`` in the student's own kernel,
        where only the visible tests run and multiple-choice answers get only their format checked.
    keys : dict
        ``answer name -> {"answer": ..., "why_wrong": {...}}`` for this test (empty when not grading).
    code : NotebookCode
        The submission's code, for checks of what the answers call.
    earlier : dict
        ``grade_id -> passed`` of the tests judged before this one in the same notebook.
    """

    assignment: str
    grade_id: str
    full: bool
    keys: Mapping[str, dict]
    code: NotebookCode
    earlier: Mapping[str, bool] = field(default_factory=dict)

    def key(self, name: str) -> dict | None:
        return self.keys.get(name)


@dataclass(frozen=True)
class Item:
    """One test cell: the answers it collects, the checks of the code itself and the function that judges.

    ``static(context)`` (optional) checks the submission's code as text, e.g. that a graded function does
    not hand the exercise to a library; it runs first, and also when the test published no answers.
    ``judge(results, context)`` decides from the collected answers.
    """

    grade_id: str
    answers: tuple[Answer, ...]
    judge: Callable[[Results, Context], str | None]
    passed: str = ""   # message when the test passes (default: "<grade_id>: checks passed")
    static: Callable[[Context], None] | None = None  # checks of the code itself (raises Wrong)

    def answer(self, name: str) -> Answer:
        return next(a for a in self.answers if a.name == name)


def _raised(obj: Any, where: str) -> tuple[str, str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str) or not isinstance(obj.get("message"), str):
        raise MalformedAnswer(f"{where}: bad exception record")
    return obj["type"][:100], obj["message"][:500]


def _call(result: Any, args: list, hidden: bool, where: str) -> Call:
    if not isinstance(result, dict):
        raise MalformedAnswer(f"{where}: bad call record")
    if "raised" in result:
        return Call(args, raised=_raised(result["raised"], where), hidden=hidden)
    returned = decode(result.get("returned"), where)
    grads, problem = None, ""
    if "grads" in result:
        raw = result["grads"]
        if not isinstance(raw, dict):
            raise MalformedAnswer(f"{where}: bad gradients")
        if "skipped" in raw:
            problem = str(raw["skipped"])[:200]
        elif "raised" in raw:
            kind, message = _raised(raw["raised"], where)
            problem = f"backward() raised {kind}: {message}"
        else:
            grads = {int(k): decode(v, where) for k, v in raw.items() if k.isdigit()}
    return Call(args, returned=returned, grads=grads, grad_problem=problem, hidden=hidden)


def _step(result: Any, case: dict, hidden: bool, where: str) -> Step:
    if not isinstance(result, dict) or not isinstance(result.get("returned"), list):
        raise MalformedAnswer(f"{where}: bad step record")
    update = decode(result["update"], where) if "update" in result else None
    return Step(case, [decode(v, where) for v in result["returned"]],
                _raised(result["raised"], where) if "raised" in result else None,
                bool(result.get("teacher_changed", False)), bool(result.get("teacher_grad", False)), update, hidden)


def decode_answers(item: Item, answers: Any, plan: dict) -> Results:
    """Check the collected answers of ``item`` against the plan that was sent and decode them.

    The case arguments are taken from ``plan`` (what the judge sent), never from the record.

    Raises
    ------
    MalformedAnswer
        An answer is missing, of the wrong probe kind, or has a different number of results.
    Wrong, Unanswered
        An answer is not a function where one is needed, or a case (a call or a training step) raised
        ``NotImplementedError``.
    """
    if not isinstance(answers, dict):
        raise MalformedAnswer("the record holds no answers")
    values, calls = {}, {}
    for answer in item.answers:
        collected = answers.get(answer.name)
        probe = plan[answer.name]
        if not answer.required and isinstance(collected, dict) and collected.get("probe") == "missing":
            calls[answer.name] = []
            continue
        if not isinstance(collected, dict) or collected.get("probe") == "missing":
            raise MalformedAnswer(f"the test did not collect {answer.name}")
        if collected.get("probe") != answer.probe:
            raise MalformedAnswer(f"{answer.name} was collected as {collected.get('probe')!r}, not {answer.probe!r}")
        if answer.probe == "value":
            values[answer.name] = decode(collected.get("value"), answer.name)
            continue
        if "not_callable" in collected:
            if not answer.required:
                calls[answer.name] = []
                continue
            got = decode(collected["not_callable"], answer.name)
            if got.kind == "none":
                raise Unanswered(f"{answer.name} is still None: write the function {answer.name} above")
            raise Wrong(f"{answer.name} must be a function (got {got.describe()})")
        results = collected.get("results")
        cases = probe["cases"]
        if not isinstance(results, list) or len(results) != len(cases):
            raise MalformedAnswer(f"{answer.name}: {len(cases)} results expected")
        visible = len(answer.cases)
        where = answer.name
        if answer.probe == "step":
            calls[answer.name] = [_step(r, c, i >= visible, where) for i, (r, c) in enumerate(zip(results, cases))]
        else:
            calls[answer.name] = [_call(r, _case_args(c), i >= visible, where)
                                  for i, (r, c) in enumerate(zip(results, cases))]
        if any(c.raised_type == "NotImplementedError" for c in calls[answer.name]):
            if not answer.required:
                calls[answer.name] = []
                continue
            raise Unanswered(f"{answer.name} is not written yet: replace the `raise NotImplementedError(...)` line in its "
                             "cell above with your code, run that cell, then run this test again")
    return Results(values, calls)


def _case_args(case: Any) -> list:
    return list(case["args"]) if isinstance(case, dict) else list(case)
