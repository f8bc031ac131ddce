"""Per-label explanations: which tokens of a text drove each label of its prediction.

Three methods, one per kind of model, chosen by ``method="auto"``:

- ``label-attention``: a model that pools with :class:`multihot.modeling.pooling.LabelAttentionPooling`
  gives each label its own softmax over the tokens, and the label's logit is read from that weighted
  sum of token states, so the weights are the label's own reading of the text (averaged over the
  members of a seed ensemble when every member pools this way). No gradients, no captum.
- ``integrated-gradients`` (any other transformer, or an ensemble of mixed poolings): Captum's
  ``LayerIntegratedGradients`` on the word-embedding layer (on every member's at once for an
  ensemble), attributing the label's logit, summed over the hidden dimension per token. Their sum
  is ``logit(text) - logit(baseline)`` up to the reported convergence delta.
- ``linear``: the TF-IDF baseline's logit is ``sum_f coef_f * x_f + intercept``, so each word gets
  its features' ``coef * tfidf`` exactly (an n-gram's share split evenly over its words and over
  its occurrences); the scores sum to ``logit - intercept``.

Transformer explanations are over **word pieces**, the ids the model read (``[CLS] zeb ##ra [SEP]``):
that is the unit both methods attribute to and the unit the deletion check removes, and merging
pieces into words would hide which piece carried the signal; renderers join ``##`` pieces on
screen. [CLS] and [SEP] are listed (attention does weigh them) but never ranked or deleted.

A run that prepares its texts (``preprocess``: html, whitespace, ...) is explained on the text as
it reads it: the tokens are read as prediction reads them (the steps applied once, by the
backend's reading or the baseline's vectorizer), and the explanation's ``text`` is the text they
are of, prepared by the same steps (``prepared_from`` keeps the one given).

Every label comes with a deletion check: removing its top-k tokens from the sequence (the ids, not
a mask, so any model can be checked the same way) should lower its probability more than removing
k random tokens (the mean over a few seeded draws). An explanation that fails it is not describing
what the model used.

Example:
    >>> explanation = explain(clf.backend, "the zebra ran", clf.labels, clf.thresholds)  # doctest: +SKIP
    >>> [(e.label, e.top_tokens(1)) for e in explanation.labels]  # doctest: +SKIP
    [('animal', ['zebra'])]
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from multihot.baseline.linear import TfidfLogistic
from multihot.core.errors import ConfigError, MultihotError
from multihot.data.encoding import check_texts
from multihot.data.labels import LabelSet
from multihot.data.preprocess import prepare_text
from multihot.scoring.calibration import Calibration, calibrated
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import Thresholds

logger = logging.getLogger(__name__)

METHODS = ("auto", "label-attention", "integrated-gradients", "linear")
RANDOM_DRAWS = 10
"""Random deletions the deletion check averages over."""
IG_TOKENS_PER_BATCH = 4096
"""Tokens per forward/backward pass of integrated gradients (steps x labels x length), so a long
text on a big encoder is done in chunks rather than in one pass that does not fit in memory."""
INSTALL_HINT = "integrated gradients need captum: pip install 'multihot[explain]'"


@dataclass(frozen=True)
class TokenAttribution:
    """One token of the text and how much it drove a label.

    Attributes:
        token: a word piece as the tokenizer writes it (``##ra`` continues the previous piece),
            or, for the linear baseline, a word as its vectorizer reads it (lowercased).
        score: attention weight (0..1, the label's row sums to 1 with [CLS]/[SEP]); integrated
            gradients or linear contribution to the label's logit (signed: positive pushes the
            label up).
        special: [CLS], [SEP] and the like: shown, never ranked or deleted.
    """

    token: str
    score: float
    special: bool = False


@dataclass(frozen=True)
class DeletionCheck:
    """Deleting the ``k`` top-ranked tokens against deleting ``k`` random ones.

    Attributes:
        k: tokens deleted (``top_k``, or half the text's tokens when it is shorter).
        prob_before: the label's probability on the whole text.
        prob_top_k: with the ``k`` top-ranked tokens deleted.
        prob_random: the mean over ``draws`` deletions of ``k`` tokens drawn at random.
        draws: random deletions averaged.
        deleted: the positions (indices into the tokens) of the top-ranked tokens deleted.
    """

    k: int
    prob_before: float
    prob_top_k: float
    prob_random: float
    draws: int
    deleted: list[int]

    @property
    def drop_top_k(self) -> float:
        return self.prob_before - self.prob_top_k

    @property
    def drop_random(self) -> float:
        return self.prob_before - self.prob_random

    @property
    def held(self) -> bool:
        """Whether deleting the top-ranked tokens lowered the probability, and by more than chance
        did. Both deletions raising it (the top tokens' less) is no support for the ranking: it
        did not hold."""
        return self.drop_top_k > 0 and self.drop_top_k > self.drop_random


@dataclass
class LabelExplanation:
    """Why one label got its probability on one text.

    Attributes:
        label: the label's name.
        probability: its probability on the text (fp32; calibrated when a calibration is given).
        threshold: its threshold; ``fired`` is what the thresholds decided (top-1 fallback included).
        method: ``label-attention``, ``integrated-gradients`` or ``linear``.
        tokens: the text's tokens in order, each with its score for this label.
        convergence_delta: integrated gradients only: ``sum(scores) - (logit(text) -
            logit(baseline))``; small against the scores means enough steps.
        check: the deletion check; None when the text has fewer than two tokens to delete.
    """

    label: str
    probability: float
    threshold: float
    fired: bool
    method: str
    tokens: list[TokenAttribution]
    convergence_delta: float | None = None
    check: DeletionCheck | None = None

    def ranking(self) -> list[int]:
        """Positions of the ordinary (not special) tokens, highest score first (ties: earlier)."""
        positions = [i for i, t in enumerate(self.tokens) if not t.special]
        return sorted(positions, key=lambda i: -self.tokens[i].score)

    def top_tokens(self, k: int = 3) -> list[str]:
        """The ``k`` highest-scoring tokens' strings."""
        return [self.tokens[i].token for i in self.ranking()[:k]]


@dataclass
class Explanation:
    """A text and the explanation of each label asked about (fired ones by default).

    Attributes:
        text: the text as the model read it: after the run's text preparation steps, so its
            tokens are the tokens of this text.
        labels: one explanation per label asked about.
        prepared_from: the text as given, when the steps changed it; None when the model read
            it as given.
        steps: the run's preparation steps (:mod:`multihot.data.preprocess`), empty for none.
    """

    text: str
    labels: list[LabelExplanation] = field(default_factory=list)
    prepared_from: str | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def prepared(self) -> bool:
        """Whether the steps changed the text (``text`` is then not the text as given)."""
        return self.prepared_from is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the deletion check with its drops and verdict)."""
        out = asdict(self)
        for entry, label in zip(out["labels"], self.labels, strict=True):
            if label.check is not None:
                entry["check"].update(
                    drop_top_k=label.check.drop_top_k,
                    drop_random=label.check.drop_random,
                    held=label.check.held,
                )
        return out


def explain(
    backend,
    text: str,
    labels: LabelSet,
    thresholds: Thresholds | Sequence[float],
    label: str | Sequence[str] | None = None,
    *,
    top_k: int = 3,
    method: str = "auto",
    n_steps: int = 50,
    seed: int = 0,
    calibration: Calibration | None = None,
) -> Explanation:
    """Explain the labels of one text: a score per token for each label, and a deletion check.

    Args:
        backend: a :class:`multihot.inference.torch_backend.TorchBackend` (a model or seed
            ensemble with its tokenizer) or a :class:`multihot.baseline.linear.TfidfLogistic`.
        text: the text.
        labels: the model's labels, in the order of its outputs.
        thresholds: the run's :class:`Thresholds`, or one value per label.
        label: the label(s) to explain; default those that fire, or the most probable one when
            none does.
        top_k: tokens the deletion check deletes (fewer for a short text).
        method: ``auto`` (label attention where the model pools with it, linear for the
            baseline, integrated gradients otherwise), or one of those by name.
        n_steps: integration steps of integrated gradients (Gauss-Legendre).
        seed: seeds the deletion check's random draws.
        calibration: the run's calibration (default: the backend's own), when its probabilities
            are calibrated (the thresholds then apply to calibrated probabilities); integrated
            gradients then attribute the calibrated logit ``logit / T + b``.

    Returns:
        An :class:`Explanation` with one :class:`LabelExplanation` per label, in label order, of
        the text as the model reads it: after the run's preparation steps (``backend.reading``'s
        ``preprocess``, the baseline's own), applied once; ``prepared_from`` keeps the text as
        given when they changed it.

    Raises:
        ConfigError: an unknown label name or method, a method the model cannot use, or
            ``top_k`` / ``n_steps`` below 1.
        MultihotError: an empty text, or integrated gradients without captum installed.

    Example:
        >>> e = explain(clf.backend, "a zebra and a violin", clf.labels, clf.thresholds)  # doctest: +SKIP
        >>> e.labels[0].label, e.labels[0].top_tokens(1), e.labels[0].check.held  # doctest: +SKIP
        ('animal', ['zebra'], True)
    """
    (text,) = check_texts([text])
    if method not in METHODS:
        raise ConfigError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if top_k < 1 or n_steps < 1:
        raise ConfigError(f"top_k and n_steps: expected at least 1, got {top_k} and {n_steps}")
    if not isinstance(thresholds, Thresholds):
        thresholds = Thresholds(np.asarray(thresholds, dtype=np.float64), "per-label", 0.5)
    if len(thresholds.values) != len(labels):
        raise MultihotError(f"{len(thresholds.values)} thresholds for {len(labels)} labels")
    if calibration is None:
        calibration = getattr(backend, "calibration", None)

    explainer = (
        _LinearExplainer(backend, method)
        if isinstance(backend, TfidfLogistic)
        else _TransformerExplainer(backend, method, n_steps)
    )
    encoded: Any  # words for the baseline, token ids for a transformer: its explainer's own form
    pieces, encoded, special = explainer.tokens(text)  # the steps run there, once, as predicting
    # The text those tokens are of: the same steps, so what is shown is what was read.
    steps = list(explainer.steps)
    prepared = prepare_text(text, steps)
    probs = _probs(explainer.logits([encoded]), calibration)[0]
    fired = thresholds.apply(probs[None])[0]
    targets = _targets(label, labels, fired, probs)
    scores, deltas = explainer.scores(encoded, targets, calibration)

    rng = np.random.default_rng(seed)
    out = Explanation(prepared, prepared_from=text if prepared != text else None, steps=steps)
    for row, j in enumerate(targets):
        tokens = [
            TokenAttribution(piece, float(score), bool(is_special))
            for piece, score, is_special in zip(pieces, scores[row], special, strict=True)
        ]
        entry = LabelExplanation(
            labels.names[j],
            float(probs[j]),
            float(thresholds.values[j]),
            bool(fired[j]),
            explainer.method,
            tokens,
            None if deltas is None else float(deltas[row]),
        )
        entry.check = _deletion_check(explainer, encoded, entry, j, top_k, rng, calibration)
        out.labels.append(entry)
    return out


def _targets(label, labels: LabelSet, fired: np.ndarray, probs: np.ndarray) -> list[int]:
    """Column indices of the labels to explain, in label order."""
    if label is None:
        chosen = np.flatnonzero(fired).tolist()
        return chosen or [int(np.argmax(probs))]
    names = [label] if isinstance(label, str) else list(label)
    unknown = [name for name in names if name not in labels]
    if unknown or not names:
        raise ConfigError(
            f"label {unknown[0] if unknown else '(none given)'!r}: not one of the model's "
            f"{len(labels)} labels: {', '.join(labels.names)}"
        )
    return sorted({labels.index[name] for name in names})


def _probs(logits: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    return sigmoid(calibrated(logits, calibration))


def _deletion_check(
    explainer, encoded, entry: LabelExplanation, j: int, top_k: int, rng, calibration
) -> DeletionCheck | None:
    """Delete the top-ranked tokens, and ``k`` random ones :data:`RANDOM_DRAWS` times, in one batch."""
    ranking = entry.ranking()
    # At most half the tokens, so that a random draw is not the top-k set itself.
    k = min(top_k, len(ranking) // 2)
    if k < 1:
        return None
    deletable = np.array(sorted(ranking))
    top = sorted(ranking[:k])
    draws = [
        sorted(rng.choice(deletable, size=k, replace=False).tolist()) for _ in range(RANDOM_DRAWS)
    ]
    variants = [explainer.delete(encoded, positions) for positions in [top, *draws]]
    probs = _probs(explainer.logits(variants), calibration)[:, j]
    return DeletionCheck(
        k, entry.probability, float(probs[0]), float(probs[1:].mean()), RANDOM_DRAWS, top
    )


# ------------------------------------------------------------------------------------ linear
class _LinearExplainer:
    """Exact per-word contributions of a :class:`TfidfLogistic`; its tokens are the words its
    vectorizer reads, and deleting words re-joins the rest with spaces (which the vectorizer reads
    as the same words, so nothing else changes)."""

    method = "linear"

    def __init__(self, model: TfidfLogistic, method: str):
        if method not in ("auto", "linear"):
            raise ConfigError(f"method {method!r}: a linear baseline is explained exactly (linear)")
        self.model = model
        # The steps its vectorizer's preprocessor runs (none for a baseline without the setting).
        self.steps: tuple[str, ...] = tuple(getattr(model.config, "preprocess", None) or ())
        self.words = model.counter.build_tokenizer()
        self.preprocess = model.counter.build_preprocessor()

    def tokens(self, text: str) -> tuple[list[str], list[str], list[bool]]:
        words = self.words(self.preprocess(text))
        return words, words, [False] * len(words)

    def logits(self, encoded: list[list[str]]) -> np.ndarray:
        return self.model.logits([" ".join(words) for words in encoded])

    def delete(self, words: list[str], positions: list[int]) -> list[str]:
        drop = set(positions)
        return [w for i, w in enumerate(words) if i not in drop]

    def scores(self, words: list[str], targets: list[int], calibration):
        """``(len(targets), len(words))`` contributions to the logit; no convergence delta."""
        scores = np.zeros((len(targets), len(words)))
        if not words:
            return scores, None
        features = self.model.features([" ".join(words)])  # 1 x n_features, sparse
        values = dict(zip(features.indices.tolist(), features.data.tolist(), strict=True))
        occurrences: dict[int, list[range]] = {}
        for n in range(1, self.model.config.ngram_max + 1):
            for start in range(len(words) - n + 1):
                f = self.model.vocabulary.get(" ".join(words[start : start + n]))
                if f is not None and f in values:
                    occurrences.setdefault(f, []).append(range(start, start + n))
        coef = self.model.coef[targets]
        if calibration is not None:
            coef = coef / np.asarray(calibration.temperatures)[targets, None]
        for f, spans in occurrences.items():
            share = coef[:, f] * values[f] / len(spans)
            for span in spans:
                for i in span:
                    scores[:, i] += share / len(span)
        return scores, None


# ------------------------------------------------------------------------------- transformer
class _TransformerExplainer:
    """Label attention or integrated gradients of a :class:`TorchBackend`'s model, in fp32."""

    def __init__(self, backend, method: str, n_steps: int):
        # keeps torch off the baseline path: explaining a linear baseline run needs no torch
        import torch

        from multihot.modeling.pooling import LabelAttentionPooling

        if method == "linear":
            raise ConfigError("method 'linear' is for the linear baseline; use auto")
        if not all(hasattr(backend, name) for name in ("model", "tokenizer", "logits_encoded")):
            raise MultihotError(
                f"cannot explain with a {type(backend).__name__}: explanations need the PyTorch "
                "backend (a transformer run) or the linear baseline"
            )
        if backend.reading.chunked:
            raise MultihotError(
                "explanations read one window of text; this run reads long texts in windows "
                "(long_text chunk), which they do not cover yet"
            )
        self.backend, self.tokenizer, self.n_steps = backend, backend.tokenizer, n_steps
        self.steps: tuple[str, ...] = backend.reading.preprocess
        model = backend.model
        if any(p.dtype != torch.float32 for p in model.parameters()):
            model = copy.deepcopy(model).float()  # gradients and weights are read in fp32
        self.model = model
        self.members = list(getattr(model, "members", [model]))
        attends = all(isinstance(m.pooling, LabelAttentionPooling) for m in self.members)
        if method == "label-attention" and not attends:
            raise ConfigError(
                "method 'label-attention' needs a model (every member of an ensemble) that pools "
                "with label-attention; use auto or integrated-gradients"
            )
        self.method = (
            "label-attention"
            if method in ("auto", "label-attention") and attends
            else "integrated-gradients"
        )
        tok = self.tokenizer
        structural = (tok.cls_token_id, tok.sep_token_id, tok.bos_token_id, tok.eos_token_id)
        self.special_ids = {i for i in structural if i is not None}

    def tokens(self, text: str) -> tuple[list[str], list[int], list[bool]]:
        """The pieces, ids and special flags of ``text`` read as predicting reads it: the
        backend's reading prepares it once (``self.steps``; html twice would make "&amp;lt;"
        "<"), so a text the steps empty is no tokens between [CLS] and [SEP]."""
        ids = self.backend.encode([text])[0]
        pieces = self.tokenizer.convert_ids_to_tokens(ids)
        return pieces, ids, [i in self.special_ids for i in ids]

    def logits(self, encoded: list[list[int]]) -> np.ndarray:
        """Uncalibrated fp32 logits, batched as prediction batches (calibration is applied by
        :func:`explain`, once)."""
        # keeps torch off the baseline path (see __init__)
        from multihot.inference.torch_backend import predict_logits

        return predict_logits(
            self.model,
            encoded,
            pad_token_id=self.tokenizer.pad_token_id,
            device=next(self.model.parameters()).device,
            precision="fp32",
        )

    def delete(self, ids: list[int], positions: list[int]) -> list[int]:
        drop = set(positions)
        return [t for i, t in enumerate(ids) if i not in drop]

    def scores(self, ids: list[int], targets: list[int], calibration):
        """``(len(targets), len(ids))`` scores, and the convergence deltas (IG) or None."""
        import torch  # keeps torch off the baseline path (see __init__)

        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], device=device)
        mask = torch.ones_like(input_ids)
        with _eval_mode(self.model):
            if self.method == "label-attention":
                return self._attention(input_ids, mask, targets), None
            return self._integrated_gradients(input_ids, mask, targets, calibration)

    def _attention(self, input_ids, mask, targets: list[int]) -> np.ndarray:
        import torch  # keeps torch off the baseline path (see __init__)

        weights = []
        with torch.inference_mode():
            for member in self.members:
                _, hidden = member(input_ids, mask, return_hidden=True)
                weights.append(member.pooling.attention(hidden, mask)[0, targets].float())
        return torch.stack(weights).mean(0).cpu().numpy().astype(np.float64)

    def _integrated_gradients(self, input_ids, mask, targets: list[int], calibration):
        import torch  # keeps torch off the baseline path (see __init__)

        try:
            from captum.attr import LayerIntegratedGradients  # optional: captum
        except ImportError:
            raise MultihotError(INSTALL_HINT) from None

        # The baseline keeps [CLS]/[SEP] and puts [PAD] everywhere else: the "no word here"
        # reference of Captum's BERT tutorial. Its embedding row is never trained (padding_idx),
        # so for scratch encoders it is the zero vector, while position embeddings and LayerNorm
        # still apply; [MASK] would be an arbitrary untrained vector for encoders trained
        # without masking.
        pad = self.tokenizer.pad_token_id
        special = torch.tensor(
            [[i in self.special_ids for i in input_ids[0].tolist()]], device=input_ids.device
        )
        baseline = torch.where(special, input_ids, torch.full_like(input_ids, pad))
        layers = [m.encoder.get_input_embeddings() for m in self.members]
        n = len(targets)

        def forward(ids, attention_mask):
            logits = self.model(ids, attention_mask)
            if calibration is not None:
                as_tensor = functools.partial(
                    torch.as_tensor, dtype=logits.dtype, device=logits.device
                )
                logits = logits / as_tensor(calibration.temperatures) + as_tensor(
                    calibration.biases
                )
            return logits

        with warnings.catch_warnings():
            # Captum warns that one listed layer must not feed another; members' embeddings
            # each read only the input ids.
            warnings.filterwarnings("ignore", "Multiple layers provided", UserWarning)
            ig = LayerIntegratedGradients(forward, layers if len(layers) > 1 else layers[0])
        rows = max(1, IG_TOKENS_PER_BATCH // input_ids.shape[1])
        with torch.enable_grad():
            attributions, delta = ig.attribute(
                input_ids.expand(n, -1),
                baselines=baseline.expand(n, -1),
                additional_forward_args=(mask.expand(n, -1),),
                target=list(targets),
                n_steps=self.n_steps,
                internal_batch_size=rows,
                return_convergence_delta=True,
            )
        if isinstance(attributions, list):  # one per ensemble member's embedding layer
            attributions = torch.stack(attributions).sum(0)
        scores = attributions.sum(-1).detach().double().cpu().numpy()
        return scores, delta.detach().double().cpu().numpy()


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode (no dropout) and a trainable encoder, restored afterwards."""
    training = model.training
    frozen = [(m, m.freeze_encoder) for m in model.modules() if hasattr(m, "freeze_encoder")]
    model.eval()
    for m, _ in frozen:
        m.freeze_encoder = False  # a frozen encoder runs under no_grad: no gradients to integrate
    try:
        yield
    finally:
        for m, was in frozen:
            m.freeze_encoder = was
        model.train(training)
