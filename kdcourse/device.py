"""Choosing where tensors live: CUDA, then Apple MPS, then the CPU.

Set the environment variable ``KDCOURSE_DEVICE`` to ``cpu``, ``cuda``, ``mps`` or ``auto``
(the default) to force a choice, e.g. ``KDCOURSE_DEVICE=cpu jupyter lab``.
"""

from __future__ import annotations

import os

import torch

__all__ = ["pick_device", "describe_device", "DEVICE_ENV_VAR"]

DEVICE_ENV_VAR = "KDCOURSE_DEVICE"
_CHOICES = ("auto", "cpu", "cuda", "mps")


def _accelerator_available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        backend = getattr(torch.backends, "mps", None)
        return backend is not None and backend.is_available()
    return kind == "cpu"


def _requested(prefer: str | None) -> tuple[str, str]:
    """Return (choice, where the choice came from)."""
    if prefer is not None:
        if not isinstance(prefer, str):
            raise TypeError(f"prefer must be a str or None, not {type(prefer).__name__} ({prefer!r})")
        return prefer.lower(), "requested by the caller"
    from_env = os.environ.get(DEVICE_ENV_VAR, "").strip().lower()
    if from_env:
        return from_env, f"set by {DEVICE_ENV_VAR}={from_env}"
    return "auto", "chosen automatically"


def _auto_choice() -> str:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available():
        kind = accelerator.current_accelerator().type
        if kind in ("cuda", "mps"):
            return kind
    for kind in ("cuda", "mps"):
        if _accelerator_available(kind):
            return kind
    return "cpu"


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the device to train on.

    Parameters
    ----------
    prefer : {"auto", "cpu", "cuda", "mps"}, optional
        Forces a choice (case-insensitive). Without it the environment variable ``KDCOURSE_DEVICE``
        decides, and without that the order is CUDA, then Apple MPS, then the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    TypeError
        If ``prefer`` is not a string.
    ValueError
        An unknown choice, or a forced accelerator that this machine does not have.
    """
    choice, _ = _requested(prefer)
    if choice not in _CHOICES:
        raise ValueError(f"device must be one of {', '.join(_CHOICES)} (got {choice!r})")
    if choice == "auto":
        return torch.device(_auto_choice())
    if not _accelerator_available(choice):
        raise ValueError(f"device {choice!r} was requested but is not available on this machine")
    return torch.device(choice)


def describe_device(device: torch.device | str | None = None, prefer: str | None = None) -> str:
    """One line saying which device is used and why, e.g. for a notebook's setup cell.

    Parameters
    ----------
    device : torch.device or str, optional
        The device to describe; default :func:`pick_device` of ``prefer``.
    prefer : str, optional
        As for :func:`pick_device`; also decides the "why" part of the sentence.

    Returns
    -------
    str
        For example ``"Using CPU: no CUDA or MPS accelerator was found (torch 2.13.0, 1 CPU threads)."``

    Raises
    ------
    ValueError
        As :func:`pick_device`.
    """
    choice, source = _requested(prefer)
    device = torch.device(device) if device is not None else pick_device(prefer)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        what = f"CUDA GPU ({name})"
    elif device.type == "mps":
        what = "Apple GPU (MPS)"
    else:
        what = "CPU"
    if choice == "auto" and device.type == "cpu":
        why = "no CUDA or MPS accelerator was found"
    elif choice == "auto":
        why = "an accelerator was found"
    else:
        why = source
    return f"Using {what}: {why} (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)."
