"""Reading answer values: placeholders, numbers, arrays and multiple-choice letters.

One way for every judge to say "not answered yet", to turn an answer into a number or an array (only
real numbers, numpy arrays and tensors count; an object claiming to be anything is refused), and to
check and mark a multiple-choice answer against its key (:func:`choice_item` is a whole
multiple-choice test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kdcourse.answers.plain import Value

from .items import Answer, Context, Item, Results
from .verdict import Unanswered, Wrong

__all__ = ["require_answered", "as_number", "as_numbers", "as_array", "check_choice_format", "judge_choice",
           "choice_key", "choice_item"]


def require_answered(value: Value, name: str, hint: str) -> None:
    """Raise :class:`Unanswered` while ``value`` still holds its placeholder ``None``."""
    if value.kind == "none":
        raise Unanswered(f"{name} is still None: {hint}")


def as_number(value: Value, name: str, hint: str = "compute it in the cell above") -> float:
    """The answer as a float: a Python or numpy number, a 0-d array or a one-element tensor.

    Raises
    ------
    Unanswered
        ``value`` is ``None``.
    Wrong
        ``value`` is anything else (a bool, a string, an array of several values, an object).
    """
    require_answered(value, name, hint)
    if value.kind == "bool" or not value.is_number:
        raise Wrong(f"{name} should be a number, got {value.describe()}")
    if value.kind in ("ndarray", "tensor"):
        return float(value.data.reshape(-1)[0])
    return float(value.data)


def as_numbers(value: Value, name: str, length: int, hint: str) -> np.ndarray:
    """A list, tuple or 1-d array of ``length`` finite real numbers (one per seed, say), as float64.

    Raises
    ------
    Unanswered
        ``value`` is ``None``.
    Wrong
        Anything else: one number, a string, a list of the wrong length or holding non-numbers.
    """
    require_answered(value, name, hint)
    if value.kind in ("list", "tuple"):
        items = value.data
        if not all(item.is_number and item.kind != "bool" for item in items):
            raise Wrong(f"{name} should hold numbers only, got {[item.describe() for item in items]}")
        numbers = np.array([float(np.asarray(item.data).reshape(-1)[0]) for item in items], dtype=np.float64)
    elif value.kind in ("ndarray", "tensor") and "bool" not in value.dtype and value.data.ndim == 1:
        numbers = np.asarray(value.data, dtype=np.float64)
    elif value.is_number:
        raise Wrong(f"{name} should be {length} numbers, one per seed, got a single number")
    else:
        raise Wrong(f"{name} should be a list of {length} numbers, got {value.describe()}")
    if numbers.shape != (length,):
        raise Wrong(f"{name} should hold {length} numbers, one per seed, got {numbers.size}")
    if not np.isfinite(numbers).all():
        raise Wrong(f"{name} holds a number that is not finite: {numbers.tolist()}")
    return numbers


def as_array(value: Value, name: str) -> np.ndarray:
    """A function's result as a float64 array: numbers, numpy arrays and tensors only."""
    if value.kind in ("int", "float") or (value.kind in ("ndarray", "tensor") and "bool" not in value.dtype):
        return np.asarray(value.data, dtype=np.float64)
    raise Wrong(f"{name} should return numbers, got {value.describe()}")


def check_choice_format(value: Value, options: Sequence[str], name: str) -> str:
    """The letter of a multiple-choice answer, after checking it is one of ``options`` (as a string)."""
    require_answered(value, name, f"set it to one of {list(options)}")
    if value.kind != "str":
        raise Wrong(f"{name} should be one of the letters {', '.join(repr(o) for o in options)} as a string, "
                    f"got {value.describe()}")
    if value.data not in options:
        raise Wrong(f"{name} should be one of {', '.join(repr(o) for o in options)}, got {value.data!r}")
    return value.data


def judge_choice(choice: str, key: dict | None, name: str) -> None:
    """Mark a (well-formed) choice against its key ``{"answer": ..., "why_wrong": {option: reason}}``.

    Without a key (the student's own kernel) only the format was checked and nothing is raised.
    """
    if key is None:
        return
    if choice != key["answer"]:
        reason = key.get("why_wrong", {}).get(choice, "")
        raise Wrong(f"{name} = {choice!r} is not the best answer. {reason}".strip())


def choice_key(context: Context, name: str) -> dict | None:
    """The key of answer ``name`` of this test; when grading, a missing key is an error (a person decides)."""
    key = context.key(name)
    if context.full and key is None:
        raise LookupError(f"the instructor file has no [key.{context.grade_id}.{name}]")
    return key


def choice_item(grade_id: str, name: str, options: list[str], hint: str | None = None) -> Item:
    """A multiple-choice test of one answer: its format always, its key when grading.

    Parameters
    ----------
    grade_id : str
        The test cell.
    name : str
        The answer variable (a string, one of ``options``).
    options : list of str
    hint : str, optional
        What to say while the answer is still ``None`` (default: the options).
    """
    def judge(results: Results, context: Context) -> str:
        value = results.value(name)
        if hint is not None:
            require_answered(value, name, hint)
        judge_choice(check_choice_format(value, options, name), choice_key(context, name), name)
        return f"{name}: {'checks passed' if context.full else 'answer recorded'}"

    return Item(grade_id, (Answer(name),), judge)
