"""Shared test set-up: a headless plotting backend and one torch thread per test process."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("KDCOURSE_PROGRESS", "0")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
