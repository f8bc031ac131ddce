"""How deep each encoder parameter sits, and which ones are the input embeddings.

Layer-wise learning-rate decay gives each depth its own rate and ``freeze_embeddings`` freezes
depth 0, so both need every parameter's depth. It is read from the model's modules, not from
parameter names (names misplace ALBERT's shared layers, DeBERTa's relative embeddings, ELECTRA's
embedding projection):

- the **block list** is the outermost ``nn.ModuleList`` of the encoder holding the most parameters
  (``encoder.layer`` for BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa, MPNet; ``transformer.layer`` for
  DistilBERT; ``layers`` for ModernBERT; ``encoder.albert_layer_groups`` for ALBERT). Block ``i``
  is at depth ``i + 1``;
- on the way from the model down to that list, what is registered **before** it is the embedding
  stage, depth 0: the module holding ``get_input_embeddings()`` and whatever maps its output to the
  hidden size (ELECTRA's ``embeddings_project``, ALBERT's ``encoder.embedding_hidden_mapping_in``).
  These are what ``freeze_embeddings`` freezes;
- what is registered **after** it is what follows the last block, depth ``num_layers + 1``
  (BERT's pooler, ModernBERT's ``final_norm``);
- **tensors used by several blocks** train at the rate of the middle block among those that use
  them (the lower middle for an even count): the update they get is the sum of what each block
  wants, and the middle rate is the geometric mean of those blocks' rates. These are ALBERT's
  shared layer groups (every released ALBERT has one group for all its layers, so its transformer
  trains at the rate of block ``ceil(num_layers / 2)``), and the relative-position tables that sit
  beside the block list and are read by every block: DeBERTa's ``encoder.rel_embeddings`` with the
  ``encoder.LayerNorm`` that normalises it, MPNet's ``encoder.relative_attention_bias``. A module
  beside the block list counts as such when the list's holder also has an embedding table there;
  else it is what follows the last block (a final norm). None of them is an input embedding.

An encoder whose structure is not recognised (no input embeddings found before a block list) falls
back to the parameter names (:func:`depth_from_name`, :func:`is_embedding_name`).

Example:
    >>> from multihot.modeling.encoders import encoder_from_config, scratch_config
    >>> bert = encoder_from_config(scratch_config("scratch-tiny", vocab_size=100, max_length=16))
    >>> depths = encoder_depths(bert)
    >>> depths["embeddings.word_embeddings.weight"], depths["encoder.layer.1.output.dense.weight"]
    (0, 2)
    >>> depths["pooler.dense.weight"]
    3
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

_BLOCK = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


@dataclass(frozen=True)
class EncoderLayout:
    """Where each parameter of an encoder sits, by its name in the encoder."""

    depths: dict[str, int]
    """Each parameter's depth: 0 the embedding stage, ``i + 1`` block ``i``, ``num_layers + 1``
    what follows the last block; tensors used by several blocks have the middle one's depth."""
    num_layers: int
    """How many blocks the encoder runs (ALBERT runs its shared group this many times)."""
    embeddings: frozenset[str]
    """The embedding stage's parameters: what ``freeze_embeddings`` freezes."""
    shared: frozenset[str]
    """Parameters used by several blocks (ALBERT's shared layers, relative-position tables)."""
    from_names: bool
    """True when the structure was not recognised and the depths come from the names."""


def encoder_layout(encoder: nn.Module) -> EncoderLayout:
    """The depth of each of ``encoder``'s parameters (a Hugging Face ``PreTrainedModel``).

    Example:
        >>> from multihot.modeling.encoders import encoder_from_config, scratch_config
        >>> bert = encoder_from_config(scratch_config("scratch-tiny", 100, 16))
        >>> layout = encoder_layout(bert)
        >>> layout.num_layers, layout.from_names, sorted(layout.embeddings)[0]
        (2, False, 'embeddings.LayerNorm.bias')
    """
    configured = getattr(getattr(encoder, "config", None), "num_hidden_layers", None)
    found = _block_list(encoder, configured if isinstance(configured, int) else None)
    stages = _stages(encoder, *found) if found else None
    if found is None or stages is None:
        return _layout_from_names(encoder, configured)
    blocks_name, blocks, num_layers = found
    before, after, shared_modules = stages
    per_block = num_layers // len(blocks)  # 1, or how many layers share each ALBERT group
    depths: dict[str, int] = {}
    shared: set[str] = set()
    for name, _ in encoder.named_parameters():
        if _under(name, blocks_name):
            index = int(name[len(blocks_name) + 1 :].split(".", 1)[0])
            depths[name] = _middle(index * per_block, per_block)
            if per_block > 1:
                shared.add(name)
        elif any(_under(name, m) for m in before):
            depths[name] = 0
        elif any(_under(name, m) for m in shared_modules):
            depths[name] = _middle(0, num_layers)
            shared.add(name)
        elif any(_under(name, m) for m in after):
            depths[name] = num_layers + 1
        else:
            depths[name] = depth_from_name(name, num_layers)
    embeddings = frozenset(name for name, depth in depths.items() if depth == 0)
    return EncoderLayout(depths, num_layers, embeddings, frozenset(shared), from_names=False)


def encoder_depths(encoder: nn.Module) -> dict[str, int]:
    """``{parameter name: depth}`` for ``encoder`` (see :func:`encoder_layout`)."""
    return encoder_layout(encoder).depths


def embedding_params(encoder: nn.Module) -> frozenset[str]:
    """The names of ``encoder``'s embedding-stage parameters, the ones ``freeze_embeddings``
    freezes (see :func:`encoder_layout`)."""
    return encoder_layout(encoder).embeddings


def depth_from_name(name: str, num_layers: int) -> int:
    """A parameter's depth read from its name alone (the fallback): 0 for ``*embeddings.*``,
    ``i + 1`` for ``*.layer.i.*`` (or ``layers``, ``h``, ``block``, ``blocks``), else
    ``num_layers + 1``.

    Example:
        >>> depth_from_name("transformer.layer.4.ffn.lin1.weight", 6)
        5
    """
    if is_embedding_name(name):
        return 0
    found = _BLOCK.search(name)
    return int(found.group(1)) + 1 if found else num_layers + 1


def is_embedding_name(name: str) -> bool:
    """Whether a parameter's name says it is an embedding (the fallback)."""
    return "embeddings." in name


def _middle(first: int, count: int) -> int:
    """The depth of the middle one of ``count`` blocks from block ``first`` (the lower middle for
    an even count): ``first + 1`` for a single block."""
    return first + (count + 1) // 2


def _under(name: str, module: str) -> bool:
    return name.startswith(module + ".")


def _block_list(
    encoder: nn.Module, configured: int | None
) -> tuple[str, nn.ModuleList, int] | None:
    """``(name, list, num_layers)`` of the encoder's blocks, or None when there is no list whose
    entries the configured number of layers is a multiple of."""
    lists = [
        (name, module)
        for name, module in encoder.named_modules()
        if name and isinstance(module, nn.ModuleList) and len(module)
    ]
    outermost = [(n, m) for n, m in lists if not any(_under(n, other) for other, _ in lists)]
    fitting = [(n, m) for n, m in outermost if not configured or configured % len(m) == 0]
    if not fitting:
        return None
    name, blocks = max(fitting, key=lambda item: sum(p.numel() for p in item[1].parameters()))
    return name, blocks, configured or len(blocks)


def _stages(
    encoder: nn.Module, blocks_name: str, blocks: nn.ModuleList, num_layers: int
) -> tuple[list[str], list[str], list[str]] | None:
    """``(before, after, shared)``: the names of the modules (and direct parameters) met on the
    way from the model down to the block list, registered before it, after it, and beside it as
    tables every block reads. None when the input embeddings are not before the list."""
    before: list[str] = []
    after: list[str] = []
    shared: list[str] = []
    module = encoder
    steps = blocks_name.split(".")
    for level, step in enumerate(steps):
        prefix = "".join(f"{s}." for s in steps[:level])
        children = list(module.named_children())
        index = [name for name, _ in children].index(step)
        before += [prefix + name for name, _ in children[:index]]
        rest = [prefix + name for name, _ in children[index + 1 :]]
        rest += [prefix + name for name, _ in module.named_parameters(recurse=False)]
        holder = level == len(steps) - 1 and level > 0  # the module that runs the blocks
        tables = any(isinstance(child, nn.Embedding) for _, child in children[index + 1 :])
        (shared if holder and tables else after).extend(rest)
        module = dict(children)[step]
    inputs = _input_embeddings_name(encoder)
    if inputs is None or not any(inputs == m or _under(inputs, m) for m in before):
        return None
    return before, after, shared


def _input_embeddings_name(encoder: nn.Module) -> str | None:
    get = getattr(encoder, "get_input_embeddings", None)
    try:
        embedding = get() if get is not None else None
    except NotImplementedError:
        return None
    return next((name for name, m in encoder.named_modules() if m is embedding), None)


def _layout_from_names(encoder: nn.Module, configured: object) -> EncoderLayout:
    names = [name for name, _ in encoder.named_parameters()]
    if isinstance(configured, int) and configured:
        num_layers = configured
    else:
        indices = [int(m.group(1)) for name in names if (m := _BLOCK.search(name))]
        num_layers = max(indices, default=-1) + 1
    depths = {name: depth_from_name(name, num_layers) for name in names}
    embeddings = frozenset(name for name in names if is_embedding_name(name))
    return EncoderLayout(depths, num_layers, embeddings, frozenset(), from_names=True)
