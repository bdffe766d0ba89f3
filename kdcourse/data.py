"""Deterministic toy datasets with train / validation / test splits (no downloads).

* :func:`make_overlapping_classes` — Gaussian classes whose overlap you control.
* :func:`load_digits_splits` — scikit-learn's bundled 8×8 digits (1,797 images, 10 classes).

Both return a :class:`DataSplits` of torch tensors: float32 features, int64 labels. scikit-learn is
imported only when a split is made.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from kdcourse._validation import MAX_SEED, check_scalar

__all__ = ["DataSplits", "make_overlapping_classes", "load_digits_splits", "split_and_standardize"]


@dataclass(frozen=True)
class DataSplits:
    """Features and labels of the three splits.

    Attributes
    ----------
    X_train, X_val, X_test : torch.Tensor
        float32 features of shape ``(n, num_features)``.
    y_train, y_val, y_test : torch.Tensor
        int64 labels of shape ``(n,)``.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_features(self) -> int:
        """Number of feature columns."""
        return int(self.X_train.shape[1])

    @property
    def num_classes(self) -> int:
        """One more than the largest label in any split."""
        labels = torch.cat([self.y_train, self.y_val, self.y_test])
        return int(labels.max().item()) + 1

    def to(self, device: torch.device | str) -> DataSplits:
        """A copy with every tensor moved to ``device``."""
        return DataSplits(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def sizes(self) -> dict[str, int]:
        """Number of examples in each split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _check_fractions(val_fraction, test_fraction) -> tuple[float, float]:
    val_fraction = check_scalar(val_fraction, "val_fraction", float, min_val=0, max_val=1,
                                include_boundaries="neither")
    test_fraction = check_scalar(test_fraction, "test_fraction", float, min_val=0, max_val=1,
                                 include_boundaries="neither")
    if not val_fraction + test_fraction < 1:
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1 "
            f"(got {val_fraction} and {test_fraction})"
        )
    return val_fraction, test_fraction


def split_and_standardize(
    X: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DataSplits:
    """Stratified train/validation/test split; features standardised with training statistics.

    Parameters
    ----------
    X : numpy.ndarray
        ``(n, num_features)`` features.
    y : numpy.ndarray
        ``(n,)`` integer labels.
    seed : int, default=0
        Seeds the split, in ``[0, 2**32 - 1]``.
    val_fraction, test_fraction : float, default=0.2
        Shares of all examples for validation and test, each in (0, 1), with a sum below 1.

    Returns
    -------
    DataSplits
        Features standardised per column with the training split's mean and standard deviation
        (a constant column is left unscaled).

    Raises
    ------
    TypeError
        If ``seed`` is not an int or a fraction not a real number.
    ValueError
        If ``seed`` or a fraction is out of range.
    """
    from sklearn.model_selection import train_test_split

    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED)
    val_fraction, test_fraction = _check_fractions(val_fraction, test_fraction)
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
    """Gaussian blobs around random class centres at distance 2 from the origin, split 60/20/20.

    Each point is ``centre[y] + overlap * noise`` with standard-normal noise, so ``overlap``
    is the noise scale relative to the centres' spread: 0.3 is nearly separable, 1.5 heavily
    overlapping (the best possible accuracy drops well below 1).

    Parameters
    ----------
    n_classes : int, default=5
        At least 2; the classes are equally frequent.
    n_features : int, default=10
        At least 1.
    n_samples : int, default=3000
        At least ``10 * n_classes``.
    overlap : float, default=1.0
        Noise scale, > 0.
    seed : int, default=0
        Seeds the centres, the noise and the split, in ``[0, 2**32 - 1]``.

    Returns
    -------
    DataSplits

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range.
    """
    n_classes = check_scalar(n_classes, "n_classes", int, min_val=2)
    n_features = check_scalar(n_features, "n_features", int, min_val=1)
    n_samples = check_scalar(n_samples, "n_samples", int, min_val=10 * n_classes)
    overlap = check_scalar(overlap, "overlap", float, min_val=0, include_boundaries="neither")
    seed = check_scalar(seed, "seed", int, min_val=0, max_val=MAX_SEED)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, n_features))
    centres *= 2.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X = centres[y] + overlap * rng.normal(size=(n_samples, n_features))
    return split_and_standardize(X, y, seed=seed)


def load_digits_splits(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> DataSplits:
    """scikit-learn's bundled digits (8×8 images flattened to 64 features), split and standardised.

    Parameters
    ----------
    seed, val_fraction, test_fraction
        As for :func:`split_and_standardize`.

    Returns
    -------
    DataSplits
        1,797 examples, 64 features, 10 classes; 1,077 / 360 / 360 with the default fractions.

    Raises
    ------
    TypeError, ValueError
        As :func:`split_and_standardize`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return split_and_standardize(
        digits.data.astype(np.float64), digits.target, seed=seed,
        val_fraction=val_fraction, test_fraction=test_fraction,
    )
