"""Batch prediction on Spark: a pandas UDF that labels a text column, made by Spark's own
``pyspark.ml.functions.predict_batch_udf``.

Spark calls the model loader once per Python worker and keeps what it returns for the worker's
later batches, as a Ray actor keeps its :class:`~multihot.batch.predictor.BatchPredictor`; this
module only says how to load a run and what a batch returns. pyspark is an optional dependency,
imported inside the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.runs import read_run_files
from multihot.batch.options import BatchOptions
from multihot.batch.predictor import BatchPredictor, prediction_columns
from multihot.core.errors import ConfigError


def predict_batch_udf(run: str | Path, *, chunk_size: int = 8192, **options: Any):
    """A Spark UDF: a column of texts in, a struct column of the run's predictions out.

    The struct has the fields :func:`~multihot.batch.predictor.prediction_columns` names:
    ``labels`` (an array of the label names that fired) and one float per label, its probability,
    named after the label, as ``multihot predict`` writes them; ``.*`` makes them columns.

    Args:
        run: the run directory, on a path every executor can read.
        chunk_size: texts per call of the model on an executor (Spark's ``batch_size``); within
            one, texts are grouped by length for the forward passes, as ``predict`` groups the
            texts of each chunk of ``--chunk-size``.
        **options: the other fields of :class:`~multihot.batch.options.BatchOptions`
            (``backend``, ``onnx_model``, ``precision``, ``batch_size``, ``prefix``). The text
            column is the one the UDF is applied to, so ``text_col`` is not taken.

    Example:
        >>> from multihot.batch.spark import predict_batch_udf  # doctest: +SKIP
        >>> label = predict_batch_udf("/shared/runs/emo", backend="onnx")  # doctest: +SKIP
        >>> df.withColumn("pred", label("body")).select("id", "pred.*")  # doctest: +SKIP
    """
    # optional: pyspark (the Spark engine)
    from pyspark.ml.functions import predict_batch_udf as spark_udf
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    if "text_col" in options:
        raise ConfigError("text_col: the UDF labels the column it is applied to; leave it out")
    checked = BatchOptions(run=Path(run), **options)
    files = read_run_files(checked.run, for_onnx=checked.backend == "onnx")  # fails here, early
    columns = prediction_columns(files.labels.names, checked.prefix)
    schema = StructType(
        [
            StructField(columns[0], ArrayType(StringType())),
            *(StructField(name, FloatType()) for name in columns[1:]),
        ]
    )
    kwargs = checked.kwargs()

    def make_predict_fn():
        predictor = BatchPredictor(**kwargs)  # once per Python worker: Spark keeps it

        def predict(texts: np.ndarray) -> list[dict[str, Any]]:
            probs, labels = predictor.predict(texts.tolist())
            # Rows, not columns: the labels that fired vary in number (Spark wants an array).
            return [
                {
                    columns[0]: np.array(fired, dtype=object),
                    **dict(zip(columns[1:], row, strict=True)),
                }
                for fired, row in zip(labels, probs.tolist(), strict=True)
            ]

        return predict

    return spark_udf(make_predict_fn, return_type=schema, batch_size=chunk_size)
