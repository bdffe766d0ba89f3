r"""A small causal Transformer (decoder only) for character-level language modelling.

Pre-norm blocks: :math:`x \leftarrow x + \mathrm{Attn}(\mathrm{LN}(x))`, :math:`x \leftarrow x +
\mathrm{MLP}(\mathrm{LN}(x))`, with causal self-attention (position :math:`i` sees positions
:math:`\le i`) and learned position embeddings. The logits are :math:`z_i = W h_i` with :math:`h_i` the last
hidden state (after a final layer norm) and :math:`W` the ``(vocab, d)`` output matrix, so
:func:`kdcourse.fused_linear_distillation_loss` can take ``hidden_states`` and ``output_weight`` directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from kdcourse._validation import check_scalar

__all__ = ["LMConfig", "CausalLM", "TEACHER_CONFIG", "STUDENT_CONFIG"]


@dataclass(frozen=True)
class LMConfig:
    """The size of a :class:`CausalLM`: vocabulary, context length, width, depth and attention heads."""

    vocab_size: int
    context: int = 64
    width: int = 64
    layers: int = 2
    heads: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "width", "layers", "heads"):
            check_scalar(getattr(self, name), name, int, min_val=1)
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


#: The unit's teacher and student (96-character vocabulary, see :mod:`kdcourse.lm.text`).
TEACHER_CONFIG = LMConfig(vocab_size=96, context=64, width=96, layers=2, heads=4)
STUDENT_CONFIG = LMConfig(vocab_size=96, context=64, width=48, layers=1, heads=2)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        # no bias: a key bias adds the same q·b to every score of a query, which the softmax ignores; its
        # gradient is rounding noise that Adam would blow up into steps (and runs would stop repeating)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.attention_out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, seq, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attention_out(attended.transpose(1, 2).reshape(batch, seq, width))
        return x + self.mlp(self.mlp_norm(x))


class CausalLM(nn.Module):
    """A decoder-only Transformer: ``(batch, seq)`` token ids to ``(batch, seq, vocab)`` next-token logits.

    >>> model = CausalLM(LMConfig(vocab_size=10, context=8, width=16, layers=1, heads=2))
    >>> model(torch.zeros(2, 5, dtype=torch.long)).shape
    torch.Size([2, 5, 10])
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Embedding(config.context, config.width)
        self.blocks = nn.ModuleList(_Block(config.width, config.heads) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width)
        self.output = nn.Linear(config.width, config.vocab_size, bias=False)

    @property
    def output_weight(self) -> torch.Tensor:
        """The ``(vocab, width)`` matrix :math:`W` of :math:`z = W h`."""
        return self.output.weight

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, width)`` last hidden states :math:`h` (after the final layer norm)."""
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (batch, seq) (got shape {tuple(tokens.shape)})")
        if tokens.shape[1] > self.config.context:
            raise ValueError(f"sequences of {tokens.shape[1]} tokens are longer than the context "
                             f"of {self.config.context}")
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden_states(tokens))
