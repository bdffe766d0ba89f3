r"""Training, sampling and measuring the unit's small language models.

Distillation trains a student on a **transfer set**: the text on which it is taught to match the teacher.
Three ways to build one, and the losses that go with them:

* **real text, soft targets** (token-level KD): windows of the corpus with the teacher's full next-token
  distribution at every position, computed once (:func:`real_text_transfer_set` with a ``teacher``), and
  :func:`kdcourse.token_distillation_loss` (:func:`train_on_transfer_set` with ``targets="soft"``);
* **generated text, hard targets** (sequence-level KD, Kim & Rush 2016; the "synthetic data" of training
  on what a model generates): the teacher *samples* continuations of real prompts once
  (:func:`generated_transfer_set`), and the student learns them with cross-entropy on those tokens
  (``targets="hard"``); only the sampled token of each position survives, not the distribution;
* **the student's own samples** (on-policy distillation, GKD: Agarwal et al. 2024): at every step the
  *student* samples continuations and the teacher scores each position (:func:`distill_on_policy`). This
  is the one that sees the student's own mistakes, and the one the reverse KL needs:
  :math:`\mathrm{KL}(p_s\|p_t) = \mathbb{E}_{y\sim p_s}[\log p_s(y) - \log p_t(y)]` is an expectation
  under the *student*.

Plus :func:`train_language_model` (next-token cross-entropy on real text: how the teacher is made, and the
labels-only baseline), :func:`generate` (sampling with a *sampling* temperature, which is not the loss's
temperature), :func:`evaluate_language_model` (held-out cross-entropy, perplexity, per-token KL to a
teacher) and :func:`sample_statistics` (entropy per token and distinct-n of samples).

Every function takes a ``seed`` or a ``torch.Generator``, so runs repeat exactly on the same machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from kdcourse._validation import check_choice, check_scalar
from kdcourse.lm.model import CausalLM
from kdcourse.lm.text import random_windows
from kdcourse.token_losses import TOKEN_DIRECTIONS, token_distillation_loss

__all__ = [
    "TARGETS",
    "History",
    "TransferSet",
    "real_text_transfer_set",
    "generated_transfer_set",
    "train_on_transfer_set",
    "distill_on_policy",
    "train_language_model",
    "generate",
    "LanguageModelScores",
    "evaluate_language_model",
    "sample_statistics",
]

#: ``"hard"``: cross-entropy on the transfer set's tokens; ``"soft"``: the token-level distillation loss
#: against the teacher's distributions.
TARGETS = ("hard", "soft")


@dataclass
class History:
    """What a training run did: the loss of every step, the tokens it trained on, the tokens it sampled."""

    losses: list[float] = field(default_factory=list)
    tokens_trained: int = 0
    tokens_generated: int = 0


@dataclass(frozen=True)
class TransferSet:
    """Sequences a student is trained on.

    Attributes
    ----------
    tokens : torch.Tensor
        ``(n, length + 1)`` token ids; a model reads ``tokens[:, :-1]``, position ``i`` predicts ``tokens[:, i + 1]``.
    mask : torch.Tensor
        ``(n, length)`` 0/1: which positions' predictions count (0 where the next token is part of a prompt).
    teacher_log_probs : torch.Tensor or None
        ``(n, length, vocab)`` the teacher's :math:`\\log p_t` at each position (at temperature
        ``temperature``), or ``None`` for hard targets only.
    temperature : float
        The temperature of ``teacher_log_probs``.
    tokens_generated : int
        How many tokens were sampled to build the set (its generation cost; 0 for real text).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    teacher_log_probs: torch.Tensor | None = None
    temperature: float = 1.0
    tokens_generated: int = 0

    def __len__(self) -> int:
        return self.tokens.shape[0]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _teacher_log_probs(teacher: CausalLM, tokens: torch.Tensor, temperature: float,
                       batch_size: int = 256) -> torch.Tensor:
    teacher.eval()
    device = _device_of(teacher)
    parts = [torch.log_softmax(teacher(tokens[i:i + batch_size, :-1].to(device)).float() / temperature, dim=-1)
             for i in range(0, len(tokens), batch_size)]
    return torch.cat(parts).cpu()


def real_text_transfer_set(ids: torch.Tensor, size: int, length: int, seed: int = 0,
                           teacher: CausalLM | None = None, temperature: float = 1.0) -> TransferSet:
    """``size`` random windows of ``length + 1`` real tokens; with a ``teacher``, its distributions at every
    position (computed once, so every student and every epoch reuses them)."""
    size = check_scalar(size, "size", int, min_val=1)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    tokens = random_windows(ids, size, length, torch.Generator().manual_seed(check_scalar(seed, "seed", int,
                                                                                          min_val=0)))
    log_probs = None if teacher is None else _teacher_log_probs(teacher, tokens, temperature)
    return TransferSet(tokens, torch.ones(size, length), log_probs, temperature)


def generated_transfer_set(model: CausalLM, ids: torch.Tensor, size: int, length: int, prompt_tokens: int = 8,
                           sampling_temperature: float = 1.0, seed: int = 0, teacher: CausalLM | None = None,
                           temperature: float = 1.0) -> TransferSet:
    """``size`` continuations that ``model`` samples after prompts of ``prompt_tokens`` real tokens, up to
    ``length + 1`` tokens in all. Positions that predict a prompt token are masked out. With a ``teacher``,
    its distributions along the generated text are attached (for soft targets on generated text)."""
    size = check_scalar(size, "size", int, min_val=1)
    length = check_scalar(length, "length", int, min_val=2)
    prompt_tokens = check_scalar(prompt_tokens, "prompt_tokens", int, min_val=1, max_val=length)
    generator = torch.Generator().manual_seed(check_scalar(seed, "seed", int, min_val=0))
    prompts = random_windows(ids, size, prompt_tokens - 1, generator)
    tokens = generate(model, prompts, length + 1 - prompt_tokens, sampling_temperature, generator).cpu()
    mask = torch.ones(size, length)
    mask[:, : prompt_tokens - 1] = 0
    log_probs = None if teacher is None else _teacher_log_probs(teacher, tokens, temperature)
    return TransferSet(tokens, mask, log_probs, temperature, tokens_generated=size * (length + 1 - prompt_tokens))


class _Optimisation:
    """AdamW with a cosine decay over ``steps``, and the history of the run: one :meth:`step` per batch."""

    def __init__(self, model: CausalLM, steps: int, learning_rate: float) -> None:
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, steps)
        self.history = History()

    def step(self, loss: torch.Tensor, tokens_trained: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.history.losses.append(float(loss.detach()))
        self.history.tokens_trained += tokens_trained


def _run_settings(steps, seed) -> tuple[int, torch.Generator]:
    """``steps`` checked, and a generator seeded with ``seed``."""
    steps = check_scalar(steps, "steps", int, min_val=1)
    return steps, torch.Generator().manual_seed(check_scalar(seed, "seed", int, min_val=0))


def _hard_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the next tokens, mean over the unmasked positions."""
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (per_token * mask).sum() / mask.sum()


def train_on_transfer_set(student: CausalLM, transfer: TransferSet, targets: str = "soft", steps: int = 300,
                          batch_size: int = 32, direction: str = "forward", beta: float = 0.5,
                          learning_rate: float = 3e-3, seed: int = 0) -> History:
    r"""Train ``student`` on random batches of ``transfer``.

    ``targets="soft"`` minimises :math:`T^2 D(p_t^T \| p_s^T)` per unmasked token (the transfer set's
    teacher distributions, its temperature :math:`T`, ``direction`` and ``beta`` as in
    :func:`kdcourse.token_distillation_loss`); ``targets="hard"`` minimises the cross-entropy of the
    transfer set's own next tokens. Note that on *generated* text the hard target is the teacher's sample,
    on real text it is the true next character (ordinary training on labels).
    """
    check_choice(targets, TARGETS, "targets")
    check_choice(direction, TOKEN_DIRECTIONS, "direction")
    if targets == "soft" and transfer.teacher_log_probs is None:
        raise ValueError("targets='soft' needs a transfer set built with a teacher (teacher=...)")
    if targets == "hard" and direction != "forward":
        raise ValueError("targets='hard' is cross-entropy on sampled tokens, the hard-label limit of the forward "
                         "KL; the reverse KL or the JSD needs soft targets or distill_on_policy")
    steps, generator = _run_settings(steps, seed)
    batch_size = check_scalar(batch_size, "batch_size", int, min_val=1)
    device = _device_of(student)
    run = _Optimisation(student, steps, learning_rate)
    student.train()
    for _ in range(steps):
        rows = torch.randint(0, len(transfer), (batch_size,), generator=generator)
        tokens, mask = transfer.tokens[rows].to(device), transfer.mask[rows].to(device)
        logits = student(tokens[:, :-1])
        if targets == "hard":
            loss = _hard_loss(logits, tokens[:, 1:], mask)
        else:
            # T · log p_t^T are logits whose tempered softmax is p_t^T again (log-probabilities are logits)
            teacher_logits = transfer.teacher_log_probs[rows].to(device) * transfer.temperature
            loss = token_distillation_loss(logits, teacher_logits, mask, temperature=transfer.temperature,
                                           direction=direction, beta=beta, check_finite=False)
        run.step(loss, int(mask.sum()))
    student.eval()
    return run.history


def distill_on_policy(student: CausalLM, teacher: CausalLM, ids: torch.Tensor, steps: int = 200,
                      batch_size: int = 16, length: int = 32, prompt_tokens: int = 8, direction: str = "reverse",
                      beta: float = 0.5, temperature: float = 1.0, sampling_temperature: float = 1.0,
                      learning_rate: float = 3e-3, seed: int = 0) -> History:
    r"""On-policy distillation: each step the student samples continuations of real prompts, and is trained
    to match the teacher's distributions along *its own* text with :func:`kdcourse.token_distillation_loss`
    (default the reverse KL, :math:`\mathrm{KL}(p_s\|p_t)`, which is an expectation under the student)."""
    check_choice(direction, TOKEN_DIRECTIONS, "direction")
    steps, generator = _run_settings(steps, seed)
    device = _device_of(student)
    teacher.eval()
    run = _Optimisation(student, steps, learning_rate)
    for _ in range(steps):
        prompts = random_windows(ids, batch_size, prompt_tokens - 1, generator)
        tokens = generate(student, prompts, length + 1 - prompt_tokens, sampling_temperature, generator)
        mask = torch.ones(batch_size, length, device=device)
        mask[:, : prompt_tokens - 1] = 0
        student.train()
        logits = student(tokens[:, :-1])
        with torch.no_grad():
            teacher_logits = teacher(tokens[:, :-1])
        loss = token_distillation_loss(logits, teacher_logits, mask, temperature=temperature, direction=direction,
                                       beta=beta, check_finite=False)
        run.step(loss, int(mask.sum()))
        run.history.tokens_generated += batch_size * (length + 1 - prompt_tokens)
    student.eval()
    return run.history


def train_language_model(model: CausalLM, ids: torch.Tensor, steps: int = 500, batch_size: int = 32,
                         learning_rate: float = 3e-3, seed: int = 0) -> History:
    r"""Next-token training on fresh random windows of real text:
    minimise :math:`-\frac{1}{BL}\sum_{b,i} \log p_\theta(x_{b,i+1} \mid x_{b,\le i})` (AdamW, cosine decay)."""
    steps, generator = _run_settings(steps, seed)
    device = _device_of(model)
    run = _Optimisation(model, steps, learning_rate)
    model.train()
    for _ in range(steps):
        windows = random_windows(ids, batch_size, model.config.context, generator).to(device)
        loss = _hard_loss(model(windows[:, :-1]), windows[:, 1:], torch.ones_like(windows[:, 1:]))
        run.step(loss, windows[:, 1:].numel())
    model.eval()
    return run.history


@torch.no_grad()
def generate(model: CausalLM, prompts: torch.Tensor, new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Sample ``new_tokens`` tokens after each prompt: :math:`x_{i+1} \sim \mathrm{softmax}(z_i / \tau)`.

    ``temperature`` :math:`\tau` is the *sampling* temperature: it changes which text is produced, not how
    a loss compares two distributions. Returns ``(batch, prompt + new_tokens)`` ids on the model's device;
    the model reads at most its last ``context`` tokens. Sampling draws on the CPU from ``generator``, so
    the text repeats for a seed on any device.
    """
    new_tokens = check_scalar(new_tokens, "new_tokens", int, min_val=0)
    temperature = check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
    was_training = model.training
    model.eval()
    sequences = prompts.to(_device_of(model))
    for _ in range(new_tokens):
        logits = model(sequences[:, -model.config.context:])[:, -1] / temperature
        probabilities = torch.softmax(logits.float(), dim=-1).cpu()
        next_ids = torch.multinomial(probabilities, 1, generator=generator).to(sequences.device)
        sequences = torch.cat([sequences, next_ids], dim=1)
    model.train(was_training)
    return sequences


@dataclass(frozen=True)
class LanguageModelScores:
    """Held-out per-token scores of a model: cross-entropy (nats), perplexity, and KL to a teacher."""

    cross_entropy: float
    perplexity: float
    kl_to_teacher: float | None


@torch.no_grad()
def evaluate_language_model(model: CausalLM, ids: torch.Tensor, teacher: CausalLM | None = None,
                            max_windows: int = 64) -> LanguageModelScores:
    r"""Per-token scores on consecutive, non-overlapping windows of held-out ``ids``:
    :math:`\mathrm{CE} = -\frac{1}{N}\sum \log p_\theta(x_{i+1}\mid x_{\le i})`, perplexity :math:`e^{\mathrm{CE}}`,
    and with a ``teacher`` the mean per-token :math:`\mathrm{KL}(p_t \| p_\theta)` on the same text."""
    context = model.config.context
    count = min(check_scalar(max_windows, "max_windows", int, min_val=1), (len(ids) - 1) // context)
    if count < 1:
        raise ValueError(f"the text has {len(ids)} tokens, too few for one window of {context + 1}")
    windows = torch.stack([ids[i * context: i * context + context + 1] for i in range(count)])
    windows = windows.to(_device_of(model))
    model.eval()
    logits = model(windows[:, :-1])
    cross_entropy = float(F.cross_entropy(logits.transpose(1, 2), windows[:, 1:]))
    kl = None
    if teacher is not None:
        teacher.eval()
        kl = float(token_distillation_loss(logits, teacher(windows[:, :-1]), check_finite=False))
    return LanguageModelScores(cross_entropy, math.exp(cross_entropy), kl)


def sample_statistics(model: CausalLM, samples: torch.Tensor, n: int = 3, skip: int = 0) -> dict[str, float]:
    r"""Entropy per token of ``model``'s next-token distributions along ``samples`` (nats), and distinct-n:
    the share of the samples' n-grams that are distinct (1.0: none repeats; lower: more repetitive text).
    ``skip`` leaves out each sample's first tokens (a prompt) from both."""
    n = check_scalar(n, "n", int, min_val=1)
    skip = check_scalar(skip, "skip", int, min_val=0)
    with torch.no_grad():
        log_p = torch.log_softmax(model(samples[:, -model.config.context:]).float(), dim=-1)[:, skip:]
    entropy = float(-(log_p.exp() * log_p).sum(-1).mean())
    grams = [tuple(row[i:i + n]) for row in samples[:, skip:].tolist() for i in range(len(row) - n + 1)]
    return {"entropy_per_token": entropy, f"distinct_{n}": len(set(grams)) / max(len(grams), 1)}
