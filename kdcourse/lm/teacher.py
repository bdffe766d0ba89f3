"""The unit's teacher language model: a seeded recipe, and the small checkpoint it produces.

Training the teacher takes a few minutes on a laptop CPU, more than a notebook's budget, so the package
ships the result (``kdcourse/lm/teacher.pt``, about 1 MB) and the recipe that makes it:

    python -m kdcourse.lm teacher --out kdcourse/lm/teacher.pt

The recipe runs torch on one thread, so that the same machine and torch version give the same weights;
the slow test lane retrains it and compares it with the committed file.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kdcourse.lm.model import TEACHER_CONFIG, CausalLM, LMConfig
from kdcourse.lm.text import load_corpus, split_corpus

__all__ = ["TeacherRecipe", "TEACHER_RECIPE", "TEACHER_CHECKPOINT", "corpus_fingerprint", "make_teacher",
           "save_teacher", "load_teacher"]

TEACHER_CHECKPOINT = Path(__file__).with_name("teacher.pt")


@dataclass(frozen=True)
class TeacherRecipe:
    """How the teacher is trained: steps of next-token training on the training split, and the seed."""

    steps: int = 800
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0


TEACHER_RECIPE = TeacherRecipe()


def corpus_fingerprint() -> str:
    """SHA-256 of the corpus text: a checkpoint made from other text (another Python's docs) says so."""
    return hashlib.sha256(load_corpus().encode()).hexdigest()


def make_teacher(recipe: TeacherRecipe = TEACHER_RECIPE, config: LMConfig = TEACHER_CONFIG) -> CausalLM:
    """Train a teacher from scratch on the CPU with one thread (about a minute)."""
    from kdcourse.lm.training import train_language_model  # not at import: a grading kernel may hide the losses

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(recipe.seed)
        teacher = CausalLM(config)
        train_language_model(teacher, split_corpus(load_corpus()).train, steps=recipe.steps,
                             batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, seed=recipe.seed)
    finally:
        torch.set_num_threads(threads)
    return teacher.eval()


def save_teacher(teacher: CausalLM, path: str | Path, recipe: TeacherRecipe = TEACHER_RECIPE) -> Path:
    """Write the weights, the config, the recipe and the corpus fingerprint (``torch.save``)."""
    path = Path(path)
    torch.save({"config": teacher.config.as_dict(), "recipe": asdict(recipe), "corpus": corpus_fingerprint(),
                "torch": str(torch.__version__), "state_dict": teacher.state_dict()}, path)
    return path


def load_teacher(path: str | Path = TEACHER_CHECKPOINT, device: torch.device | str = "cpu") -> CausalLM:
    """The teacher in evaluation mode on ``device``, its parameters frozen (``weights_only`` loading)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no teacher checkpoint at {path}; make one with "
                                f"`python -m kdcourse.lm teacher --out {path}`")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    teacher = CausalLM(LMConfig(**saved["config"]))
    teacher.load_state_dict(saved["state_dict"])
    teacher.requires_grad_(False)
    return teacher.to(device).eval()
