"""Offline English text and a character-level tokenizer for the language-model unit.

The corpus is the help text of the Python documentation that ships with every Python
(``pydoc_data.topics``, about 465,000 characters): nothing is downloaded. Curly quotes and dashes are
written as their ASCII forms, and any other character outside printable ASCII becomes ``?``, so the
vocabulary is newline plus the 95 printable ASCII characters: 96 tokens.

A *window* is ``context + 1`` consecutive token ids: a model reads the first ``context`` and, at each
position ``i``, predicts token ``i + 1`` (the shift by one of next-token prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdcourse._validation import check_scalar

if TYPE_CHECKING:
    import torch

__all__ = ["VOCABULARY", "CharTokenizer", "load_corpus", "TextSplits", "split_corpus", "random_windows"]

#: Newline, then printable ASCII from space to tilde.
VOCABULARY = "\n" + "".join(chr(code) for code in range(32, 127))
_ASCII_FORMS = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": "--",
                "\u2013": "-", "\t": "    "}
_UNKNOWN = "?"


def load_corpus(max_chars: int | None = None) -> str:
    """The Python documentation's help topics, concatenated in sorted topic order, in the tokenizer's alphabet.

    Parameters
    ----------
    max_chars : int, optional
        Keep only the first ``max_chars`` characters (>= 1).
    """
    from pydoc_data.topics import topics

    text = "".join(topics[name] for name in sorted(topics))
    for fancy, plain in _ASCII_FORMS.items():
        text = text.replace(fancy, plain)
    allowed = set(VOCABULARY)
    text = "".join(ch if ch in allowed else _UNKNOWN for ch in text)
    if max_chars is not None:
        text = text[: check_scalar(max_chars, "max_chars", int, min_val=1)]
    return text


class CharTokenizer:
    """Characters to token ids and back: id ``i`` is ``VOCABULARY[i]``.

    >>> tokenizer = CharTokenizer()
    >>> tokenizer.decode(tokenizer.encode("KL(p||q)"))
    'KL(p||q)'
    """

    def __init__(self) -> None:
        self.vocabulary = VOCABULARY
        self._ids = {ch: i for i, ch in enumerate(VOCABULARY)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; a character outside the vocabulary raises ``ValueError`` naming it."""
        try:
            return [self._ids[ch] for ch in text]
        except KeyError as error:
            raise ValueError(f"character {error.args[0]!r} is not in the vocabulary "
                             "(newline and printable ASCII); clean the text with load_corpus's rules") from None

    def decode(self, ids) -> str:
        """The text of a sequence of token ids (a list or a 1-D tensor)."""
        values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        if any(not 0 <= int(i) < self.vocab_size for i in values):
            raise ValueError(f"token ids must be in [0, {self.vocab_size - 1}]")
        return "".join(self.vocabulary[int(i)] for i in values)


@dataclass(frozen=True)
class TextSplits:
    """Token ids of the corpus, cut into consecutive train / validation / test parts (1-D int64 tensors)."""

    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor


def split_corpus(text: str, tokenizer: CharTokenizer | None = None, validation: float = 0.05,
                 test: float = 0.05) -> TextSplits:
    """Encode ``text`` and cut it into train, validation and test parts, in that order (no shuffling:
    held-out text is text the model never saw, not windows interleaved with training ones)."""
    import torch

    tokenizer = tokenizer or CharTokenizer()
    validation = check_scalar(validation, "validation", float, min_val=0, max_val=0.5, include_boundaries="neither")
    test = check_scalar(test, "test", float, min_val=0, max_val=0.5, include_boundaries="neither")
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.int64)
    n_validation, n_test = int(len(ids) * validation), int(len(ids) * test)
    n_train = len(ids) - n_validation - n_test
    return TextSplits(ids[:n_train], ids[n_train:n_train + n_validation], ids[n_train + n_validation:])


def random_windows(ids: torch.Tensor, batch_size: int, context: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch_size, context + 1)`` windows of consecutive ids starting at random offsets.

    The model reads ``windows[:, :-1]``; the next-token targets are ``windows[:, 1:]``.
    """
    import torch

    batch_size = check_scalar(batch_size, "batch_size", int, min_val=1)
    context = check_scalar(context, "context", int, min_val=1)
    if len(ids) < context + 1:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than context + 1 = {context + 1}")
    starts = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)
    return torch.stack([ids[start:start + context + 1] for start in starts.tolist()])
