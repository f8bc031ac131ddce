"""Batch prediction on the engines where jobs of millions of texts run: Ray Data.

- :mod:`multihot.batch.options`: :class:`BatchOptions` (the run and how to label) and
  :class:`RayOptions` (actors, their resources, rows per call), typed and checked.
- :mod:`multihot.batch.predictor`: :class:`BatchPredictor`, the callable class an engine builds
  once per worker (it loads the run once) and calls on each batch of rows (a pandas DataFrame or
  an Arrow table): the rows come back with one probability column per label and the labels that
  fired. It imports no engine.
- :mod:`multihot.batch.ray_data`: ``multihot predict --engine ray``: a file read, labelled by an
  actor pool and written back through Ray Data, on this machine or the cluster in ``RAY_ADDRESS``.
- :mod:`multihot.batch.spark`: :func:`predict_batch_udf`, a Spark UDF that labels a text column
  (made by Spark's own ``predict_batch_udf``, the run loaded once per Python worker).

Ray and pyspark are optional dependencies, imported inside the functions that use them. The
names below are imported when first used, as the package root's are: the options alone do not
load pandas and pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multihot.core.lazy import lazy_exports

_EXPORTS = {
    "BatchOptions": "multihot.batch.options",
    "RayOptions": "multihot.batch.options",
    "BatchPredictor": "multihot.batch.predictor",
    "prediction_columns": "multihot.batch.predictor",
    "predict_file": "multihot.batch.ray_data",
    "predict_batch_udf": "multihot.batch.spark",
}

if TYPE_CHECKING:
    from multihot.batch.options import BatchOptions, RayOptions
    from multihot.batch.predictor import BatchPredictor, prediction_columns
    from multihot.batch.ray_data import predict_file
    from multihot.batch.spark import predict_batch_udf


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BatchOptions",
    "BatchPredictor",
    "RayOptions",
    "predict_batch_udf",
    "predict_file",
    "prediction_columns",
]
