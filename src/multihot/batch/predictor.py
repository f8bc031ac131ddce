"""The callable class of a batch job: rows in, the same rows with the run's predictions out.

Ray Data's ``map_batches`` (and any engine that hands a worker pandas DataFrames or Arrow tables)
builds :class:`BatchPredictor` once per worker, so the run is loaded once per worker and not once
per batch, then calls it on each batch. The columns it adds have the names ``multihot predict``
writes in CSV: ``labels`` (the labels that fired) and one probability column per label, so a batch
job's output compares with ``predict``'s column by column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from multihot.batch.options import BatchOptions
from multihot.core.errors import ConfigError, DataError, MultihotError
from multihot.core.threads import set_threads
from multihot.inference.predictor import Predictor

LABELS_COLUMN = "labels"
"""The column of the labels that fired (a list of label names), as in ``predict``'s output."""


def prediction_columns(label_names: Sequence[str], prefix: str = "") -> list[str]:
    """The names of the columns :class:`BatchPredictor` adds: the labels column, then one
    probability column per label, in the run's label order.

    Example:
        >>> prediction_columns(["joy", "anger"])
        ['labels', 'joy', 'anger']
        >>> prediction_columns(["joy", "anger"], prefix="pred_")
        ['pred_labels', 'pred_joy', 'pred_anger']
    """
    names = [f"{prefix}{LABELS_COLUMN}", *(f"{prefix}{name}" for name in label_names)]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"a label is named {LABELS_COLUMN!r}, like the column of the labels that fired: "
            "give a prefix for the added columns"
        )
    return names


class BatchPredictor:
    """Label batches of rows with a run: one probability column per label, and the labels that
    fired (the run's thresholds applied), added to the rows as they are.

    The engine builds it once per worker (a Ray actor loads the run once, then labels every batch
    it is given) and calls it on each batch, a pandas DataFrame or a pyarrow Table; the batch comes
    back in the same format with the columns of :func:`prediction_columns` added: ``labels`` (a list
    of label names per row) and, per label, its probability as float32 in a column named after the
    label, as ``multihot predict`` writes them. Within a batch, texts are grouped by length for the
    forward passes (:class:`multihot.inference.predictor.Predictor`), so the same batches give the
    same probabilities as ``predict`` reading the file in chunks of the same size.

    Args:
        run: the run directory. The other keyword arguments are those of :class:`BatchOptions`.

    Raises:
        MultihotError: a bad option or run directory (when built); a missing text column, a
            column it would add that the rows already have, or a text that is not one (null,
            empty, invalid Unicode) when called.

    Example:
        >>> import ray  # doctest: +SKIP
        >>> ds = ray.data.read_parquet("texts.parquet")  # doctest: +SKIP
        >>> ds = ds.map_batches(  # doctest: +SKIP
        ...     BatchPredictor,
        ...     fn_constructor_kwargs={"run": "runs/emotions", "backend": "onnx"},
        ...     compute=ray.data.ActorPoolStrategy(size=4),  # concurrency=4 before Ray 2.51
        ...     batch_size=8192,
        ...     batch_format="pyarrow",
        ... )
        >>> ds.write_parquet("predictions/")  # doctest: +SKIP
    """

    def __init__(self, run: str | Path, **options: Any):
        self.options = BatchOptions(run=Path(run), **options)
        o = self.options
        if o.threads is not None:
            set_threads(o.threads)
        self.predictor = Predictor.load(
            o.run, backend=o.backend, onnx_path=o.onnx_model, precision=o.precision
        )
        self.text_col = o.text_col or self.predictor.config.data.text_col
        self.columns = prediction_columns(self.predictor.label_names, o.prefix)

    @property
    def label_names(self) -> list[str]:
        return self.predictor.label_names

    def __call__(self, batch: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
        """``batch`` with the prediction columns added, rows in the same order."""
        if isinstance(batch, pa.Table):
            return self._arrow(batch)
        if isinstance(batch, pd.DataFrame):
            return self._pandas(batch)
        raise ConfigError(
            f"expected a batch as a pandas DataFrame or a pyarrow Table, got "
            f"{type(batch).__name__}: pass batch_format='pandas' or 'pyarrow' to map_batches"
        )

    def predict(self, texts: list) -> tuple[np.ndarray, list[list[str]]]:
        """``(probs, labels)`` of a batch's texts: float32 ``(n_texts, num_labels)`` and the label
        names that fired per text."""
        try:
            probs = self.predictor.predict_proba(texts, self.options.batch_size)
        except MultihotError as err:
            raise DataError(
                f"column {self.text_col!r}, in a batch of {len(texts)} rows: {err}"
            ) from None
        labels = self.predictor.labels.decode(self.predictor.thresholds.apply(probs))
        return probs.astype(np.float32, copy=False), labels

    def _check_columns(self, present: Sequence[str]) -> None:
        if self.text_col not in present:
            raise DataError(
                f"no column {self.text_col!r} in the rows; they have {', '.join(map(str, present))}"
                " (give text_col)"
            )
        clash = [name for name in self.columns if name in present]
        if clash:
            raise DataError(
                f"the rows already have the column(s) {', '.join(clash)} that predictions would "
                "fill: drop them (Dataset.drop_columns) or give a prefix for the added columns"
            )

    def _arrow(self, batch: pa.Table) -> pa.Table:
        self._check_columns(batch.column_names)
        probs, labels = self.predict(batch.column(self.text_col).to_pylist())
        out = batch.append_column(self.columns[0], pa.array(labels, type=pa.list_(pa.string())))
        for j, name in enumerate(self.columns[1:]):
            out = out.append_column(name, pa.array(np.ascontiguousarray(probs[:, j])))
        return out

    def _pandas(self, batch: pd.DataFrame) -> pd.DataFrame:
        self._check_columns(list(batch.columns))
        probs, labels = self.predict(batch[self.text_col].tolist())
        added = {self.columns[0]: pd.Series(labels, index=batch.index, dtype=object)}
        for j, name in enumerate(self.columns[1:]):
            added[name] = pd.Series(probs[:, j], index=batch.index)
        # A new frame: the engine may hand over a read-only batch (zero-copy).
        return pd.concat([batch, pd.DataFrame(added, index=batch.index)], axis=1)
