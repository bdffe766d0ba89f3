"""Collecting what a student's answers do, in the student's kernel.

A *probe* says how to collect one answer; the judge writes the probes (with their test inputs) and the
kernel runs them. Four kinds:

* ``value`` -- the answer variable itself, as plain data;
* ``call`` -- the answer is a function: call it on each case's arguments and keep what it returned or
  the exception it raised;
* ``loss`` -- as ``call``, then ``backward()`` on the returned scalar tensor, keeping the gradients
  that reached the arguments listed in ``grads``;
* ``step`` -- the answer is a training step ``step(student, teacher, batch, optimizer, T, alpha)``: run
  it on a fixed tiny scenario (:mod:`kdcourse.answers.scenarios`) and keep the returned losses, whether
  the teacher changed or received a gradient (at any step), and the student's parameter update (of the
  first step).

Each case's arguments are converted before the call: ``array`` (numpy float64), ``labels`` (numpy
int64), ``tensor`` (torch float64), ``tensor_grad`` (torch float64 that requires a gradient),
``label_tensor`` (torch int64), ``float``, ``int`` or ``raw`` (as given). Nothing here decides whether
an answer is right.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .plain import encode

__all__ = ["run_probe", "MISSING"]

#: The placeholder for an answer the test cell did not pass.
MISSING = object()
_MAX_MESSAGE = 500


def _convert(value: Any, how: str) -> Any:
    if how == "raw":
        return value
    if how == "float":
        return float(value)
    if how == "int":
        return int(value)
    import numpy as np

    if how == "array":
        return np.asarray(value, dtype=np.float64)
    if how == "labels":
        return np.asarray(value, dtype=np.int64)
    import torch

    if how == "tensor":
        return torch.tensor(value, dtype=torch.float64)
    if how == "tensor_grad":
        return torch.tensor(value, dtype=torch.float64, requires_grad=True)
    if how == "label_tensor":
        return torch.tensor(value, dtype=torch.int64)
    raise ValueError(f"unknown argument conversion {how!r}")


def _raised(error: BaseException) -> dict:
    return {"type": type(error).__name__, "message": str(error)[:_MAX_MESSAGE]}


def _quietly(function: Callable, *args) -> Any:
    """Call ``function`` with warnings and numpy floating-point warnings silenced."""
    import numpy as np

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return function(*args)


def _case(case: Any, default: list[str]) -> tuple[list, list[str]]:
    """``(arguments, conversions)`` of one case: a list of arguments, or ``{"args": [...], "convert": [...]}``."""
    if isinstance(case, dict):
        return list(case["args"]), list(case.get("convert", default))
    return list(case), default


def _call(fn: Callable, case: Any, conversions: list[str], grads: tuple[int, ...]) -> dict:
    args, how = _case(case, conversions)
    converted = [_convert(a, c) for a, c in zip(args, how)]
    try:
        returned = _quietly(fn, *converted)
    except Exception as error:  # noqa: BLE001 - the student's code raised: that is the observation
        return {"raised": _raised(error)}
    result = {"returned": encode(returned)}
    if grads:
        result["grads"] = _backward(returned, converted, grads)
    return result


def _backward(returned: Any, converted: list, grads: tuple[int, ...]) -> dict:
    import torch

    if type(returned) is not torch.Tensor or returned.numel() != 1 or not returned.requires_grad:
        return {"skipped": "the result is not a scalar tensor that requires a gradient"}
    try:
        _quietly(returned.backward)
    except Exception as error:  # noqa: BLE001 - what the student's code raised is the observation
        return {"raised": _raised(error)}
    return {str(i): encode(converted[i].grad) for i in grads}


def _step(fn: Callable, case: dict) -> dict:
    """Run ``fn`` (a training step) ``case["steps"]`` times on the scenario of ``case["seed"]``."""
    import torch

    from .scenarios import flat_parameters, stale_gradients, tiny_scenario

    teacher, student, batch = tiny_scenario(int(case["seed"]))
    optimizer = torch.optim.SGD(student.parameters(), lr=float(case["lr"]))
    if case.get("stale"):
        for parameter, gradient in zip(student.parameters(), stale_gradients(student, int(case["seed"]))):
            parameter.grad = gradient.clone()
    teacher_before, student_before = flat_parameters(teacher), flat_parameters(student)
    returned, record = [], {}
    for index in range(int(case.get("steps", 1))):
        try:
            value = _quietly(fn, student, teacher, batch, optimizer, float(case["temperature"]), float(case["alpha"]))
        except Exception as error:  # noqa: BLE001 - what the student's code raised is the observation
            record["raised"] = _raised(error)
            break
        returned.append(encode(value))
        changed = bool((flat_parameters(teacher) != teacher_before).any())
        grad = any(p.grad is not None and bool((p.grad != 0).any()) for p in teacher.parameters())
        record["teacher_changed"] = record.get("teacher_changed", False) or changed
        record["teacher_grad"] = record.get("teacher_grad", False) or grad
        if index == 0:
            record["update"] = encode(flat_parameters(student) - student_before)
    record["returned"] = returned
    return record


def run_probe(probe: dict, answer: Any) -> dict:
    """Collect ``answer`` as ``probe`` says; the result is plain data.

    Parameters
    ----------
    probe : dict
        ``{"probe": kind, "args": [conversion, ...], "cases": [...], "grads": [index, ...]}``.
    answer : object
        The student's variable or function (:data:`MISSING` when the test cell did not pass it).

    Returns
    -------
    dict
        ``{"probe": kind, ...}``: ``"value"`` for value probes, ``"results"`` (one per case) for the
        others; ``{"probe": "missing"}`` or ``{"probe": kind, "not_callable": {...}}`` when the answer
        cannot be probed.
    """
    kind = probe["probe"]
    if answer is MISSING:
        return {"probe": "missing"}
    if kind == "value":
        return {"probe": "value", "value": encode(answer)}
    if not callable(answer):
        return {"probe": kind, "not_callable": encode(answer)}
    if kind == "step":
        return {"probe": kind, "results": [_step(answer, case) for case in probe["cases"]]}
    grads = tuple(probe.get("grads", ())) if kind == "loss" else ()
    return {"probe": kind, "results": [_call(answer, case, probe.get("args", []), grads) for case in probe["cases"]]}
