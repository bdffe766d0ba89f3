"""Deterministic toy datasets with train / validation / test splits (no downloads).

* :func:`make_overlapping_classes` — Gaussian classes whose overlap you control.
* :func:`load_digits_splits` — scikit-learn's bundled 8×8 digits (1,797 images, 10 classes).

Both return a :class:`DataSplits` of torch tensors: float32 features, int64 labels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["DataSplits", "make_overlapping_classes", "load_digits_splits", "split_and_standardize"]


@dataclass(frozen=True)
class DataSplits:
    """Features ``X_*`` (float32, ``(n, num_features)``) and labels ``y_*`` (int64, ``(n,)``)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def num_classes(self) -> int:
        labels = torch.cat([self.y_train, self.y_val, self.y_test])
        return int(labels.max().item()) + 1

    def to(self, device: torch.device | str) -> "DataSplits":
        """A copy with every tensor moved to ``device``."""
        return DataSplits(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def sizes(self) -> dict[str, int]:
        """Number of examples in each split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def split_and_standardize(
    X: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DataSplits:
    """Stratified train/validation/test split; features standardised with training statistics."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1 "
            f"(got {val_fraction} and {test_fraction})"
        )
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=y_rest
    )
    mean = X_train.mean(axis=0)
    scale = X_train.std(axis=0)
    scale[scale == 0] = 1.0

    def features(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((a - mean) / scale, dtype=torch.float32)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.int64)

    return DataSplits(
        features(X_train), labels(y_train), features(X_val), labels(y_val), features(X_test), labels(y_test)
    )


def make_overlapping_classes(
    n_classes: int = 5,
    n_features: int = 10,
    n_samples: int = 3000,
    overlap: float = 1.0,
    seed: int = 0,
) -> DataSplits:
    """Gaussian blobs around random class centres at distance 2 from the origin.

    Each point is ``centre[y] + overlap * noise`` with standard-normal noise, so ``overlap``
    is the noise scale relative to the centres' spread: 0.3 is nearly separable, 1.5 heavily
    overlapping (the best possible accuracy drops well below 1).
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2 (got {n_classes})")
    if n_features < 1 or n_samples < 10 * n_classes:
        raise ValueError(
            f"need n_features >= 1 and n_samples >= 10 * n_classes (got {n_features}, {n_samples})"
        )
    if not overlap > 0:
        raise ValueError(f"overlap must be > 0 (got {overlap})")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, n_features))
    centres *= 2.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X = centres[y] + overlap * rng.normal(size=(n_samples, n_features))
    return split_and_standardize(X, y, seed=seed)


def load_digits_splits(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> DataSplits:
    """scikit-learn's bundled digits (8×8 images flattened to 64 features), split and standardised."""
    digits = load_digits()
    return split_and_standardize(
        digits.data.astype(np.float64), digits.target, seed=seed,
        val_fraction=val_fraction, test_fraction=test_fraction,
    )
