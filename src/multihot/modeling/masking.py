"""Token masking while training: a regulariser, and an optional masked-language-model loss.

With ``mask_prob`` p, each non-special token of a training text is chosen with probability p and,
as in BERT's pretraining (Devlin et al., 2019), replaced by [MASK] (80%), by a random token (10%) or
kept (10%). The classifier then learns from the corrupted text (token dropout: it cannot lean on a
few memorised words). With ``mlm_weight`` w > 0 the encoder also predicts the original tokens at the
chosen positions, and the loss is

    L = L_labels + w * CE(vocab logits at chosen positions, original tokens),

which keeps teaching a from-scratch encoder the language of the training texts while it learns the
labels. The prediction head (dense, GELU, LayerNorm, then the input embeddings transposed) exists
only during training; it is not part of the saved model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from multihot.modeling.model import MultiLabelModel


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    prob: float,
    mask_token_id: int,
    special_ids: list[int],
    vocab_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a batch of token ids; returns ``(corrupted ids, chosen positions)``.

    Padding and special tokens are never chosen. Random numbers come from ``generator`` (on the CPU),
    so a seeded run masks the same tokens every time.

    Example:
        >>> ids = torch.tensor([[2, 10, 11, 12, 3, 0]]); mask = (ids != 0).long()
        >>> g = torch.Generator().manual_seed(0)
        >>> out, chosen = mask_tokens(ids, mask, prob=1.0, mask_token_id=4, special_ids=[0, 2, 3],
        ...                           vocab_size=20, generator=g)
        >>> chosen.tolist()
        [[False, True, True, True, False, False]]
    """
    shape = input_ids.shape
    eligible = attention_mask.bool().cpu()
    for token in special_ids:
        eligible &= input_ids.cpu() != token
    draws = torch.rand(shape, generator=generator)
    chosen = eligible & (draws < prob)
    # Among the chosen: draws / prob is uniform in [0, 1); below 0.8 -> [MASK], 0.8-0.9 -> random.
    relative = draws / max(prob, 1e-12)
    to_mask = chosen & (relative < 0.8)
    to_random = chosen & (relative >= 0.8) & (relative < 0.9)
    random_ids = torch.randint(len(special_ids), vocab_size, shape, generator=generator)
    out = input_ids.cpu().clone()
    out[to_mask] = mask_token_id
    out[to_random] = random_ids[to_random]
    return out.to(input_ids.device), chosen.to(input_ids.device)


class MaskedLMTraining(nn.Module):
    """A :class:`MultiLabelModel` with a masked-token prediction head, for training only.

    ``forward`` returns the label logits and, at the ``chosen`` positions, vocabulary logits.
    """

    def __init__(self, model: MultiLabelModel):
        super().__init__()
        self.model = model
        hidden = model.encoder.config.hidden_size
        vocab = _input_embeddings(model).shape[0]
        self.transform = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=1e-12)
        )
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        chosen: torch.Tensor,
        chunk_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, hidden = self.model(
            input_ids, attention_mask, return_hidden=True, chunk_index=chunk_index
        )
        states = self.transform(hidden[chosen])
        embeddings = _input_embeddings(self.model)
        return logits, F.linear(states, embeddings, self.bias)


def _input_embeddings(model: MultiLabelModel) -> torch.Tensor:
    """The encoder's token embedding matrix ``(vocab, hidden)``."""
    weight = model.encoder.get_input_embeddings().weight
    assert isinstance(weight, torch.Tensor)  # a Parameter of the embedding module
    return weight
