"""Answers as plain data: the one format in which answers leave a student's kernel.

A student's kernel may only *report* what its answers are; a trusted judge outside it decides whether
they are right. What crosses that boundary is plain JSON data, never pickles or code:

=========================  ==============================================================================
value                      plain form
=========================  ==============================================================================
``None``                   ``{"t": "none"}``
``bool``, ``numpy.bool_``  ``{"t": "bool", "v": true, "dtype": "bool"}`` (``dtype`` only for numpy)
``int``, numpy integers    ``{"t": "int", "v": 3, "dtype": "int64"}``
``float``, numpy floats    ``{"t": "float", "v": 0.25, "dtype": "float64"}``; NaN and ±inf as ``"nan"``,
                           ``"inf"``, ``"-inf"``
``str``                    ``{"t": "str", "v": "A"}``
``numpy.ndarray``          ``{"t": "ndarray", "dtype": "float64", "shape": [2, 3], "v": [...]}`` (flat)
``torch.Tensor``           ``{"t": "tensor", "dtype": "torch.float64", "shape": [], "v": [...],
                           "requires_grad": true, "grad_fn": true, "device": "cpu"}``
``list``, ``tuple``        ``{"t": "list", "v": [...]}``, ``{"t": "tuple", "v": [...]}``
``dict`` with str keys     ``{"t": "dict", "v": {...}}``
anything else              ``{"t": "object", "type": "ClassName"}`` (nothing of it is read)
=========================  ==============================================================================

Only the exact built-in, numpy and torch types are read; a subclass (an object that claims to equal
everything, say) is reported as an ``object``. :func:`encode` runs in the kernel; :func:`decode` runs in
the judge and rejects anything malformed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["encode", "decode", "Value", "MalformedAnswer", "MAX_ELEMENTS", "MAX_STRING"]

#: Largest array (elements) and string (characters) an answer may carry.
MAX_ELEMENTS = 200_000
MAX_STRING = 20_000
MAX_ITEMS = 1_000
MAX_DEPTH = 6


class MalformedAnswer(ValueError):
    """A plain answer that does not follow the format (the judge scores it 0 and says why)."""


def _number(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _numpy():
    return sys.modules.get("numpy")


def _torch():
    return sys.modules.get("torch")


def _encode_numpy_scalar(np, value) -> dict:
    dtype = str(value.dtype)
    if isinstance(value, np.bool_):
        return {"t": "bool", "v": bool(value), "dtype": dtype}
    if isinstance(value, np.integer):
        return {"t": "int", "v": int(value), "dtype": dtype}
    if isinstance(value, np.floating):
        return {"t": "float", "v": _number(float(value)), "dtype": dtype}
    return {"t": "object", "type": f"numpy.{type(value).__name__}"}


def _flat_numbers(values: list, kind: str) -> list:
    if kind == "f":
        return [_number(float(x)) for x in values]
    if kind == "b":
        return [bool(x) for x in values]
    return [int(x) for x in values]


def _encode_array(np, value) -> dict:
    kind = value.dtype.kind
    if kind not in "fiub" or value.size > MAX_ELEMENTS:
        return {"t": "object", "type": f"ndarray of {value.dtype} with {value.size} elements"}
    return {"t": "ndarray", "dtype": str(value.dtype), "shape": list(value.shape),
            "v": _flat_numbers(value.ravel().tolist(), "f" if kind == "f" else ("b" if kind == "b" else "i"))}


def _encode_tensor(torch, value) -> dict:
    if value.numel() > MAX_ELEMENTS or value.is_complex():
        return {"t": "object", "type": f"tensor of {value.dtype} with {value.numel()} elements"}
    flat = value.detach().reshape(-1).cpu()
    kind = "f" if value.is_floating_point() else ("b" if value.dtype == torch.bool else "i")
    numbers = flat.tolist() if kind != "f" else flat.double().tolist()
    return {"t": "tensor", "dtype": str(value.dtype), "shape": list(value.shape),
            "v": _flat_numbers(numbers, kind), "requires_grad": bool(value.requires_grad),
            "grad_fn": value.grad_fn is not None, "device": str(value.device)}


def encode(value: Any, _depth: int = 0) -> dict:
    """The plain form of ``value`` (see the module's table). Never raises for any object."""
    try:
        kind = type(value)
        if value is None:
            return {"t": "none"}
        if kind is bool:
            return {"t": "bool", "v": value}
        if kind is int:
            return {"t": "int", "v": value} if abs(value) < 2**63 else {"t": "object", "type": "int (too large)"}
        if kind is float:
            return {"t": "float", "v": _number(value)}
        if kind is str:
            return {"t": "str", "v": value} if len(value) <= MAX_STRING else {"t": "object", "type": "str (too long)"}
        np, torch = _numpy(), _torch()
        if np is not None and isinstance(value, np.generic):
            return _encode_numpy_scalar(np, value)
        if np is not None and kind is np.ndarray:
            return _encode_array(np, value)
        if torch is not None and kind in (torch.Tensor, torch.nn.Parameter):
            return _encode_tensor(torch, value)
        if kind in (list, tuple) and _depth < MAX_DEPTH and len(value) <= MAX_ITEMS:
            return {"t": kind.__name__, "v": [encode(x, _depth + 1) for x in value]}
        if kind is dict and _depth < MAX_DEPTH and len(value) <= MAX_ITEMS and all(type(k) is str for k in value):
            return {"t": "dict", "v": {k: encode(v, _depth + 1) for k, v in value.items()}}
        return {"t": "object", "type": getattr(kind, "__qualname__", "object")}
    except Exception:  # noqa: BLE001 - an object whose attributes raise: report it as an opaque object
        return {"t": "object", "type": "object that could not be read"}


# --- the judge's side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A decoded plain answer.

    Attributes
    ----------
    kind : str
        ``"none"``, ``"bool"``, ``"int"``, ``"float"``, ``"str"``, ``"ndarray"``, ``"tensor"``, ``"list"``,
        ``"tuple"``, ``"dict"`` or ``"object"``.
    data : object
        The Python value: a number, str, bool, None, a list/dict of :class:`Value`, or for arrays and
        tensors a ``numpy.ndarray`` (float64 for floating dtypes).
    dtype : str
        numpy or torch dtype name (``""`` for plain Python values).
    type_name : str
        For ``"object"``: the class name the kernel reported.
    requires_grad, grad_fn : bool
        For tensors.
    """

    kind: str
    data: Any = None
    dtype: str = ""
    type_name: str = ""
    requires_grad: bool = False
    grad_fn: bool = False

    @property
    def is_number(self) -> bool:
        """A real number: Python/numpy int or float, a 0-d array, or a one-element tensor (not bool)."""
        if self.kind in ("int", "float"):
            return True
        return self.kind in ("ndarray", "tensor") and self.data.size == 1 and "bool" not in self.dtype

    def describe(self) -> str:
        """The type in words, for messages: ``"a float"``, ``"a torch tensor of shape (2, 3)"``, ..."""
        if self.kind == "tensor":
            return f"a torch tensor of shape {tuple(self.data.shape)}"
        if self.kind == "ndarray":
            return f"a numpy array of shape {tuple(self.data.shape)}"
        if self.kind == "object":
            return f"an object of type {self.type_name}"
        names = {"none": "None", "bool": "a bool", "int": "an int", "float": "a float", "str": "a string",
                 "list": "a list", "tuple": "a tuple", "dict": "a dict"}
        return names[self.kind]


def _decode_number(v: Any, where: str) -> float:
    if isinstance(v, str):
        if v not in ("nan", "inf", "-inf"):
            raise MalformedAnswer(f"{where}: unknown number {v!r}")
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MalformedAnswer(f"{where}: expected a number, got {type(v).__name__}")
    return float(v)


def _decode_array(obj: dict, where: str):
    import numpy as np

    shape, values = obj.get("shape"), obj.get("v")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise MalformedAnswer(f"{where}: bad shape")
    if not isinstance(values, list) or len(values) > MAX_ELEMENTS or len(values) != math.prod(shape):
        raise MalformedAnswer(f"{where}: {len(values) if isinstance(values, list) else '?'} values for shape {shape}")
    dtype = obj.get("dtype", "")
    if not isinstance(dtype, str):
        raise MalformedAnswer(f"{where}: bad dtype")
    if "bool" in dtype:
        array = np.array([bool(x) for x in values], dtype=bool)
    elif "int" in dtype:
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in values):
            raise MalformedAnswer(f"{where}: integer array with non-integers")
        array = np.array(values, dtype=np.int64)
    else:
        array = np.array([_decode_number(x, where) for x in values], dtype=np.float64)
    return array.reshape(shape), dtype


def decode(obj: Any, where: str = "answer", _depth: int = 0) -> Value:
    """Check a plain answer and turn it into a :class:`Value`; raise :class:`MalformedAnswer` if it is off."""
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise MalformedAnswer(f"{where}: not a plain answer")
    if _depth > MAX_DEPTH:
        raise MalformedAnswer(f"{where}: nested too deeply")
    kind, v = obj["t"], obj.get("v")
    dtype = obj.get("dtype", "")
    if kind == "none":
        return Value("none")
    if kind == "bool":
        if not isinstance(v, bool):
            raise MalformedAnswer(f"{where}: bool expected")
        return Value("bool", v, dtype=str(dtype))
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise MalformedAnswer(f"{where}: int expected")
        return Value("int", v, dtype=str(dtype))
    if kind == "float":
        return Value("float", _decode_number(v, where), dtype=str(dtype))
    if kind == "str":
        if not isinstance(v, str) or len(v) > MAX_STRING:
            raise MalformedAnswer(f"{where}: str expected")
        return Value("str", v)
    if kind in ("ndarray", "tensor"):
        array, dtype = _decode_array(obj, where)
        return Value(kind, array, dtype=dtype, requires_grad=bool(obj.get("requires_grad", False)),
                     grad_fn=bool(obj.get("grad_fn", False)))
    if kind in ("list", "tuple"):
        if not isinstance(v, list) or len(v) > MAX_ITEMS:
            raise MalformedAnswer(f"{where}: list expected")
        return Value(kind, [decode(x, where, _depth + 1) for x in v])
    if kind == "dict":
        if not isinstance(v, dict) or len(v) > MAX_ITEMS or not all(isinstance(k, str) for k in v):
            raise MalformedAnswer(f"{where}: dict expected")
        return Value("dict", {k: decode(x, where, _depth + 1) for k, x in v.items()})
    if kind == "object":
        return Value("object", type_name=str(obj.get("type", "object"))[:200])
    raise MalformedAnswer(f"{where}: unknown kind {kind!r}")
