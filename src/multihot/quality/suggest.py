"""``multihot suggest``: which unlabelled texts to label next, with the model's labels for them.

1. POOL's texts are read (any labels there are ignored); a text repeated in POOL counts once, and
   texts already labelled are skipped: the run's training texts (which it records as hashes,
   ``training-texts.safetensors``; a run saved before they were kept needs its training data
   given as ``labelled``), its validation texts (``validation.jsonl``) and the texts of
   ``labelled``, if given. Texts are compared normalised as
   :func:`multihot.data.duplicates.normalize_text` compares copies (by their hashes,
   :mod:`multihot.data.texthashes`).
2. One pass of the run's model gives each text's probabilities (calibrated when the run is: the
   scale its thresholds were tuned on), each ensemble member's, and the vectors its head reads
   (for the linear baseline, the TF-IDF vectors).
3. A strategy (:data:`STRATEGIES`) scores each text in [0, 1]: how much labelling it should help.
4. Diversity (:data:`DIVERSITIES`) picks the batch: with ``kcenter``, greedy k-center over the
   best :data:`CANDIDATES_PER_PICK` times N candidates, so that the batch is not N near copies of
   one uncertain text; with ``none``, the N best.
5. The batch carries the pre-annotation: the labels above their thresholds and the near misses,
   written as JSON lines, Label Studio's import JSON or CSV (:data:`FORMATS`). The JSON lines and
   the CSV have ``text`` and ``labels`` columns: corrected, the file is training data.

The strategies and the pick are pure functions of arrays, tested on crafted values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.rundir import TRAINING_TEXTS, VALIDATION
from multihot.artifacts.runs import RunFiles, read_run_files
from multihot.artifacts.trainingtexts import read_training_texts
from multihot.artifacts.validation import read_validation
from multihot.core.config import is_baseline
from multihot.core.errors import ConfigError, DataError
from multihot.core.files import dumps, write_atomic
from multihot.data.encoding import check_texts
from multihot.data.labels import LabelSet
from multihot.data.labelstudio import choices_prediction, labelling_config
from multihot.data.prepare import DataLike, read_data
from multihot.data.readers import Dataset, iter_text_batches, read_column
from multihot.data.texthashes import TextHashes, text_hashes
from multihot.data.writers import check_new_file, records_csv, records_jsonl
from multihot.inference.predictor import Predictor
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import Thresholds

logger = logging.getLogger(__name__)

RARITY_POWER = 0.5
"""How much more a label with few known positives counts: a label's weight is
``((1 + fewest) / (1 + its positives)) ** RARITY_POWER``, 1 for the rarest label, so a label with
four times the positives (plus one) counts half as much."""
CANDIDATES_PER_PICK = 10
"""With ``kcenter`` diversity, the batch of N is drawn from the best ``10 * N`` texts."""
NEAR_MISSES = 3
"""Labels below their thresholds that a suggestion names, closest first (as ``predict`` shows)."""
MODEL_VERSION = "multihot-suggest"
"""The model version of the Label Studio pre-annotations (how a project tells them apart)."""
FORMATS = ("jsonl", "label-studio", "csv")
"""The forms a batch is written in; :func:`format_for` guesses one from a file name."""
DIVERSITIES = ("kcenter", "none")


@dataclass
class PoolPredictions:
    """What the strategies score the pool's texts by.

    Attributes:
        probs: ``(n_texts, num_labels)``: the model's probabilities (calibrated when the run is).
        thresholds: ``(num_labels,)``: the run's thresholds, on the scale of ``probs``.
        positives: ``(num_labels,)``: known positives per label, or None when unknown.
        member_probs: ``(members, n_texts, num_labels)`` for an ensemble run, else None.
        seed: the random strategy's seed.
    """

    probs: np.ndarray
    thresholds: np.ndarray
    positives: np.ndarray | None = None
    member_probs: np.ndarray | None = None
    seed: int = 0


# ------------------------------------------------------------------------------------ strategies
def label_weights(positives: np.ndarray | None, num_labels: int) -> np.ndarray:
    """``(num_labels,)``: each label's weight by its known positives (:data:`RARITY_POWER`); all
    ones when the positives are unknown.

    Example:
        >>> label_weights(np.array([3, 15, 63]), 3).tolist()
        [1.0, 0.5, 0.25]
    """
    if positives is None:
        return np.ones(num_labels)
    counts = np.asarray(positives, dtype=np.float64)
    return ((1.0 + counts.min()) / (1.0 + counts)) ** RARITY_POWER


def threshold_closeness(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(n_texts, num_labels)`` in [0, 1]: 1 where a probability sits on its label's threshold,
    falling linearly to 0 at 0 below it and at 1 above it (each side scaled to its own length, so
    a threshold of 0.2 leaves as much doubt at 0.1 as at 0.6).

    Example:
        >>> threshold_closeness(np.array([[0.1, 0.6, 0.2]]), np.array([0.2, 0.2, 0.2])).tolist()
        [[0.5, 0.5, 1.0]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    gap = np.where(probs < t, (t - probs) / t, (probs - t) / (1 - t))
    return 1.0 - np.clip(gap, 0.0, 1.0)


def threshold_scores(pool: PoolPredictions) -> np.ndarray:
    """``threshold``: a text's most doubtful label decides, ``max_j w_j * closeness_j``
    (:func:`label_weights`, :func:`threshold_closeness`).

    The maximum, not a sum: a text is worth a label when one of its decisions is in doubt, and a
    sum over many labels would favour texts that are vaguely near every threshold.

    Example:
        >>> probs = np.array([[0.5, 0.0], [0.05, 0.25], [0.9, 0.0]])
        >>> pool = PoolPredictions(probs, np.array([0.5, 0.3]), positives=np.array([99, 0]))
        >>> threshold_scores(pool).round(2).tolist()
        [0.1, 0.83, 0.02]
    """
    weights = label_weights(pool.positives, pool.probs.shape[1])
    return (threshold_closeness(pool.probs, pool.thresholds) * weights).max(axis=1)


def ensemble_scores(pool: PoolPredictions) -> np.ndarray:
    """``ensemble``: how much the members disagree, ``max_j w_j * 2 * std_m(p_mj)`` (the standard
    deviation of the members' probabilities, 0.5 at most, brought to [0, 1]).

    Raises:
        ConfigError: the run is not an ensemble of at least two members.

    Example:
        >>> members = np.array([[[0.9], [0.5]], [[0.1], [0.5]]])  # 2 members, 2 texts, 1 label
        >>> pool = PoolPredictions(members.mean(axis=0), np.array([0.5]), member_probs=members)
        >>> ensemble_scores(pool).round(2).tolist()
        [0.8, 0.0]
    """
    if pool.member_probs is None or pool.member_probs.shape[0] < 2:
        raise _not_an_ensemble()
    weights = label_weights(pool.positives, pool.probs.shape[1])
    spread = 2.0 * np.asarray(pool.member_probs, dtype=np.float64).std(axis=0)
    return (spread * weights).max(axis=1)


def _not_an_ensemble() -> ConfigError:
    return ConfigError(
        "strategy 'ensemble' needs a run of several members (multihot train --ensemble N); "
        "this run is one model: use strategy 'threshold'"
    )


def random_scores(pool: PoolPredictions) -> np.ndarray:
    """``random``: uniform scores from ``pool.seed``, the baseline every strategy must beat."""
    return np.random.default_rng(pool.seed).random(len(pool.probs))


@dataclass(frozen=True)
class Strategy:
    """A named way to score the pool."""

    score: Callable[[PoolPredictions], np.ndarray]
    """``(n_texts,)`` scores in [0, 1], higher first."""
    diversity: str
    """The diversity it is used with unless another is asked for."""
    help: str


STRATEGIES: dict[str, Strategy] = {
    "threshold": Strategy(
        threshold_scores,
        "kcenter",
        "probabilities near their thresholds, labels with few positives first",
    ),
    "ensemble": Strategy(ensemble_scores, "kcenter", "disagreement between ensemble members"),
    "random": Strategy(random_scores, "none", "texts drawn at random (seeded): the baseline"),
}
DEFAULT_STRATEGY = "threshold"
"""Picked on GoEmotions dev by ``benchmarks/active_learning.py`` (simulated labelling rounds, two
seeds), with its default k-center diversity: above random selection and above ``threshold``
without diversity from 1,500 labelled texts on (docs/benchmarks.md, "The labelling loop")."""


# ------------------------------------------------------------------------------------- the pick
def _distances(vectors, j: int) -> np.ndarray:
    """``(n,)`` cosine distances from row ``j`` of unit rows (dense or scipy sparse)."""
    sims = vectors @ vectors[j].T
    if hasattr(sims, "toarray"):  # sparse rows give a sparse (n, 1) product
        sims = sims.toarray()
    return np.clip(1.0 - np.asarray(sims, dtype=np.float64).ravel(), 0.0, None)


def kcenter(vectors, scores: np.ndarray, n: int) -> np.ndarray:
    """Greedy k-center weighted by score: the best-scored text first, then each time the text
    whose score times cosine distance to the nearest text picked so far is largest.

    Args:
        vectors: ``(n_texts, dim)`` unit rows, dense or scipy sparse.
        scores: ``(n_texts,)`` in [0, 1].
        n: how many to pick (at most ``n_texts``).

    Returns:
        ``(n,)`` row indices, in the order picked.

    Example:
        >>> v = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
        >>> kcenter(v, np.array([1.0, 0.9, 0.5]), 2).tolist()  # not the near copy of the first
        [0, 2]
    """
    scores = np.maximum(np.asarray(scores, dtype=np.float64), 1e-9)  # a zero still has a reach
    n = min(n, len(scores))
    picked = [int(np.argmax(scores))]
    nearest = _distances(vectors, picked[0])
    for _ in range(n - 1):
        gain = scores * nearest
        gain[picked] = -np.inf
        j = int(np.argmax(gain))
        picked.append(j)
        nearest = np.minimum(nearest, _distances(vectors, j))
    return np.asarray(picked, dtype=np.int64)


def pick(scores: np.ndarray, n: int, vectors=None) -> np.ndarray:
    """The batch: ``(min(n, n_texts),)`` row indices, best score first.

    Without ``vectors`` the ``n`` best scores (ties in row order); with them, :func:`kcenter` over
    the best ``CANDIDATES_PER_PICK * n``.

    Example:
        >>> pick(np.array([0.2, 0.9, 0.5]), 2).tolist()
        [1, 2]
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    if vectors is None:
        return order[:n]
    candidates = order[: CANDIDATES_PER_PICK * n]
    chosen = candidates[kcenter(vectors[candidates], scores[candidates], n)]
    return chosen[np.argsort(-scores[chosen], kind="stable")]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``(members, n_texts, dim)`` vectors as ``(n_texts, members * dim)`` unit rows: each
    member's part scaled to length ``1 / sqrt(members)``, so a cosine distance is the mean of the
    members' cosine distances."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=2, keepdims=True)
    parts = vectors / np.maximum(norms, 1e-12) / np.sqrt(vectors.shape[0])
    return np.concatenate(list(parts), axis=1)


# ----------------------------------------------------------------------------------- the batch
@dataclass
class Suggestions:
    """A batch of texts to label, best first, with the model's pre-annotation.

    Attributes:
        label_names: the run's labels, in the order of ``probs``' columns.
        thresholds: the run's thresholds (on the scale of ``probs``).
        strategy, diversity: how the batch was picked.
        rows: each text's row in POOL (0-based; for a ``.txt`` file, among its non-blank lines).
        texts: the texts.
        scores: ``(n,)`` the strategy's score of each.
        probs: ``(n, num_labels)`` the model's probabilities.
        ids: each text's id (POOL's id column) when POOL has one, else None.
        pool_texts: POOL's texts; ``repeats``: those repeating an earlier one;
            ``labelled``: those skipped as already labelled; ``ranked``: those scored.
    """

    label_names: list[str]
    thresholds: Thresholds
    strategy: str
    diversity: str
    rows: list[int]
    texts: list[str]
    scores: np.ndarray
    probs: np.ndarray
    ids: list[str] | None = None
    pool_texts: int = 0
    repeats: int = 0
    labelled: int = 0
    ranked: int = 0
    skipped_sources: list[str] = field(default_factory=list)
    """Where the skipped labelled texts came from (the run's training texts, validation.jsonl,
    the labelled files)."""

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labels(self) -> list[list[str]]:
        """The suggested labels of each text: those at or above their thresholds."""
        decisions = self.thresholds.apply(self.probs)
        return [[self.label_names[j] for j in np.flatnonzero(row)] for row in decisions]

    @property
    def near_misses(self) -> list[list[str]]:
        """Per text, up to :data:`NEAR_MISSES` labels not suggested, closest to their
        thresholds first."""
        decisions = self.thresholds.apply(self.probs)
        gaps = self.thresholds.values - self.probs
        out = []
        for row, gap in zip(decisions, gaps, strict=True):
            below = [j for j in np.argsort(gap, kind="stable") if not row[j]]
            out.append([self.label_names[j] for j in below[:NEAR_MISSES]])
        return out

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready object per text, best first: ``rank`` (from 1), ``row``, ``id`` (when
        POOL has ids), ``score``, ``labels`` (suggested), ``near_misses``, ``probs`` (every
        label's probability) and ``text``."""
        records = []
        rounded = np.round(self.probs.astype(np.float64), 6).tolist()
        for i, (labels, near) in enumerate(zip(self.labels, self.near_misses, strict=True)):
            record: dict[str, Any] = {"rank": i + 1, "row": self.rows[i]}
            if self.ids is not None:
                record["id"] = self.ids[i]
            record.update(score=round(float(self.scores[i]), 6), labels=labels)
            record["near_misses"] = near
            record["probs"] = dict(zip(self.label_names, rounded[i], strict=True))
            record["text"] = self.texts[i]
            records.append(record)
        return records

    def to_jsonl(self) -> str:
        return records_jsonl(self.records())

    def to_csv(self) -> str:
        """A header and a row per text: the :meth:`records` columns, label lists joined with
        commas (as the data readers split them), without ``probs``, ``text`` last."""
        flat = []
        for record in self.records():
            record = {k: v for k, v in record.items() if k != "probs"}
            record["labels"] = ",".join(record["labels"])
            record["near_misses"] = ",".join(record["near_misses"])
            flat.append(record)
        return records_csv(flat)

    def label_studio_tasks(self) -> list[dict[str, Any]]:
        """Label Studio import tasks, best first: ``data`` has the ``text``, its ``row``,
        ``id``, ``score``, ``rank`` and the ``near_misses`` with their probabilities; the one
        prediction chooses the suggested labels."""
        tasks = []
        for record in self.records():
            probs = record["probs"]
            near = "; ".join(f"{name} {probs[name]:.2f}" for name in record["near_misses"])
            data = {k: v for k, v in record.items() if k not in ("labels", "probs")}
            data["near_misses"] = near or "(none)"
            prediction = choices_prediction(
                record["labels"],
                model_version=MODEL_VERSION,
                score=record["score"],
                result_id=f"r{record['row']}",
            )
            tasks.append({"data": data, "predictions": [prediction]})
        return tasks

    def label_studio_config(self) -> str:
        """The labelling configuration the tasks need (paste it into the project)."""
        return labelling_config(self.label_names, (("Near misses", "near_misses"),))

    def render(self, fmt: str = "jsonl") -> str:
        """The batch as the text of a file in ``fmt`` (one of :data:`FORMATS`)."""
        if fmt == "jsonl":
            return self.to_jsonl()
        if fmt == "csv":
            return self.to_csv()
        if fmt == "label-studio":
            return dumps(self.label_studio_tasks())
        raise ConfigError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")

    def write(self, path: str | Path, fmt: str | None = None, *, force: bool = False) -> Path:
        """Write the batch to ``path`` in ``fmt`` (default: :func:`format_for` the name), all
        or nothing; an existing file is replaced only with ``force``."""
        path = check_new_file(path, force=force)
        write_atomic(path, self.render(fmt or format_for(path)))
        return path


def format_for(path: str | Path) -> str:
    """The format a file name asks for: ``.csv`` CSV, ``.json`` Label Studio's import JSON,
    anything else JSON lines.

    Example:
        >>> format_for("batch.json"), format_for("batch.jsonl")
        ('label-studio', 'jsonl')
    """
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".json": "label-studio"}.get(suffix, "jsonl")


# ------------------------------------------------------------------------------------- suggest
def suggest(
    run: str | Path,
    pool: str | Path | Sequence[str],
    n: int,
    *,
    strategy: str = DEFAULT_STRATEGY,
    diversity: str | None = None,
    labelled: DataLike | Sequence[DataLike] | None = None,
    text_col: str | None = None,
    id_col: str | None = "id",
    seed: int = 0,
    batch_size: int = 64,
    precision: str = "auto",
) -> Suggestions:
    """Rank POOL's unlabelled texts by how much labelling them should help; the best ``n``.

    Args:
        run: a run directory (transformer or linear baseline).
        pool: a data file (its text column; labels ignored), a ``.txt`` file (one text per line),
            or a list of texts.
        n: the batch size.
        strategy: one of :data:`STRATEGIES`.
        diversity: ``kcenter`` or ``none`` (default: the strategy's own).
        labelled: data already labelled, one file or several: their texts are skipped too, and
            their positives weight the labels. The run's training texts (as it recorded them)
            and validation texts are skipped without it, and the validation positives weight the
            labels; a run saved before runs recorded their training texts needs its training
            data here for them to be skipped.
        text_col: POOL's text column (default: the run's).
        id_col: POOL's column naming each text in the batch, when it has one.
        seed: the random strategy's seed.
        batch_size, precision: the model's pass (see :class:`multihot.Predictor`).

    Returns:
        The :class:`Suggestions`: ``n`` distinct texts (fewer when POOL has fewer left).

    Raises:
        MultihotError: a bad choice, file or run; strategy ``ensemble`` on a run of one model; no
            text left once the labelled ones are skipped.

    Example:
        >>> batch = suggest("runs/emotions", "unlabelled.csv", 50)  # doctest: +SKIP
        >>> batch.write("batch.jsonl")  # doctest: +SKIP
    """
    diversity = check_choices(n, strategy, diversity)
    files = read_run_files(run)  # what the data is read with; the weights load once it is read
    if strategy == "ensemble" and files.config.model.ensemble < 2:
        raise _not_an_ensemble()
    texts, ids = read_pool(pool, text_col or files.config.data.text_col, id_col)
    known, positives, sources = _labelled(files, labelled)
    keep, repeats, skipped = _unlabelled(texts, known)
    if not keep:
        raise DataError(f"{_name(pool)}: no text left once those already labelled are skipped")
    predictor = Predictor.load(run, precision=precision)
    probs, member_probs, vectors = _read_model(predictor, [texts[r] for r in keep], batch_size)
    scored = PoolPredictions(probs, predictor.thresholds.values, positives, member_probs, seed)
    scores = STRATEGIES[strategy].score(scored)
    chosen = pick(scores, n, vectors if diversity == "kcenter" else None)
    rows = [keep[i] for i in chosen]
    batch = Suggestions(
        predictor.label_names,
        predictor.thresholds,
        strategy,
        diversity,
        rows=rows,
        texts=[texts[r] for r in rows],
        scores=scores[chosen],
        probs=probs[chosen],
        ids=None if ids is None else [ids[r] for r in rows],
        pool_texts=len(texts),
        repeats=repeats,
        labelled=skipped,
        ranked=len(keep),
        skipped_sources=sources,
    )
    logger.info(
        "%s: %d texts (%d repeats and %d already labelled skipped); %d ranked by %s, "
        "%d picked (diversity: %s)",
        _name(pool),
        len(texts),
        repeats,
        skipped,
        len(keep),
        strategy,
        len(batch),
        diversity,
    )
    return batch


def check_choices(n: int, strategy: str, diversity: str | None) -> str:
    """Refuse a bad batch size, strategy or diversity; the diversity to use."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n: expected a whole number of texts of at least 1, got {n!r}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    diversity = diversity or STRATEGIES[strategy].diversity
    if diversity not in DIVERSITIES:
        raise ConfigError(f"diversity: expected one of {', '.join(DIVERSITIES)}, got {diversity!r}")
    return diversity


def read_pool(
    pool: str | Path | Sequence[str], text_col: str, id_col: str | None
) -> tuple[list[str], list[str] | None]:
    """``(texts, ids)`` of POOL: every text (checked as prediction checks them), in row order,
    and the id column's values when the file has one."""
    if not isinstance(pool, (str, Path)):
        return check_texts(pool), None
    texts = [t for batch in iter_text_batches(pool, text_col=text_col) for t in batch]
    ids = None
    if id_col is not None and str(pool) != "-":
        try:
            ids = read_column(pool, id_col)
        except DataError:  # a .txt file has no columns
            ids = None
    if ids is not None and len(ids) != len(texts):
        logger.warning("%s: column %r does not line up with the texts; ids left out", pool, id_col)
        ids = None
    return texts, ids


def _labelled(
    files: RunFiles, labelled: DataLike | Sequence[DataLike] | None
) -> tuple[TextHashes, np.ndarray | None, list[str]]:
    """``(texts to skip, positives per label, where they came from)``: the run's training texts
    as it recorded them, its validation texts, and those of ``labelled``."""
    labels = files.labels
    known: list[TextHashes] = []
    sources: list[str] = []
    trained = read_training_texts(files.path)
    if trained is not None:
        known.append(trained)
        sources.append(str(files.path / TRAINING_TEXTS))
    validation = read_validation(files.path, labels)
    if validation is not None:
        known.append(TextHashes.of(validation.texts))
        sources.append(str(files.path / VALIDATION))
    if labelled is None:
        if trained is None:
            logger.warning(
                "%s: the run does not record its training texts (saved before runs kept them); "
                "only its %d validation texts are skipped: give the training data (labelled=, "
                "--labelled) to skip its texts too",
                files.path,
                0 if validation is None else len(validation.texts),
            )
        positives = None if validation is None else validation.targets.sum(axis=0)
        return TextHashes.empty().union(*known), positives, sources
    given = [labelled] if isinstance(labelled, (str, Path, Dataset)) else list(labelled)
    positives = np.zeros(len(labels), dtype=np.int64)
    for data in given:
        dataset = read_data(data, files.config)
        known.append(TextHashes.of(dataset.texts))
        positives += _positives(dataset, labels)
        sources.append(dataset.source)
    return TextHashes.empty().union(*known), positives, sources


def _positives(dataset: Dataset, labels: LabelSet) -> np.ndarray:
    """``(num_labels,)`` positives of the run's labels in ``dataset`` (other names ignored)."""
    index = {name: j for j, name in enumerate(labels.names)}
    counts = np.zeros(len(labels), dtype=np.int64)
    for names in dataset.labels:
        for name in names:
            if name in index:
                counts[index[name]] += 1
    return counts


def _unlabelled(texts: list[str], known: TextHashes) -> tuple[list[int], int, int]:
    """``(rows to rank, repeats, labelled)``: the first row of each normalised text that is not
    among the ``known`` (labelled) ones, and how many rows were skipped for each reason."""
    hashes = text_hashes(texts)
    skip = known.holds_hashes(hashes).tolist()
    seen: set[int] = set()
    keep, repeats, labelled = [], 0, 0
    for row, key in enumerate(hashes.tolist()):
        if skip[row]:
            labelled += 1
        elif key in seen:
            repeats += 1
        else:
            seen.add(key)
            keep.append(row)
    return keep, repeats, labelled


def _read_model(
    predictor: Predictor, texts: list[str], batch_size: int
) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """``(probs, member_probs or None, unit vectors)`` of ``texts`` in one pass of the model."""
    engine = predictor.engine
    if is_baseline(engine.kind):  # TF-IDF rows, already of unit length
        return engine.predict_proba(texts), None, engine.features(texts)
    readout = engine.readout(texts, batch_size, predictor.precision)
    members = sigmoid(readout.member_logits) if readout.member_logits.shape[0] > 1 else None
    return sigmoid(readout.logits), members, unit_rows(readout.vectors)


def _name(pool: Any) -> str:
    return str(pool) if isinstance(pool, (str, Path)) else "the pool"
