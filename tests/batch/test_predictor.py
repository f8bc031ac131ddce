"""The callable class of batch jobs, without an engine: pandas and Arrow batches in, the same rows
with ``predict``'s probabilities and labels out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helpers import TOY_TEXTS
from multihot.batch import BatchOptions, BatchPredictor, prediction_columns
from multihot.core.errors import ConfigError, DataError
from multihot.inference.predictor import Predictor


@pytest.fixture(scope="module")
def labelled(toy_run):
    """The toy run as a batch predictor, and what ``Predictor`` gives for the toy texts."""
    _, run = toy_run
    predictor = Predictor.load(run, precision="fp32")
    probs = predictor.predict_proba(TOY_TEXTS)
    return BatchPredictor(run, precision="fp32"), probs, predictor.predict(TOY_TEXTS)


def test_arrow_batch_gains_predict_columns_in_row_order(labelled):
    batch_predictor, probs, labels = labelled
    batch = pa.table({"id": list(range(len(TOY_TEXTS))), "text": TOY_TEXTS})
    out = batch_predictor(batch)
    names = batch_predictor.label_names
    assert out.column_names == ["id", "text", "labels", *names]
    assert out.column("id").to_pylist() == list(range(len(TOY_TEXTS)))
    assert out.column("labels").to_pylist() == labels
    assert out.schema.field(names[0]).type == pa.float32()
    got = np.column_stack([out.column(name).to_numpy() for name in names])
    np.testing.assert_array_equal(got, probs)


def test_pandas_batch_gains_the_same_columns(labelled):
    batch_predictor, probs, labels = labelled
    batch = pd.DataFrame({"text": TOY_TEXTS}, index=range(10, 10 + len(TOY_TEXTS)))
    out = batch_predictor(batch)
    assert list(out.columns) == ["text", "labels", *batch_predictor.label_names]
    assert list(out.index) == list(batch.index)
    assert [list(row) for row in out["labels"]] == labels
    np.testing.assert_array_equal(out[batch_predictor.label_names].to_numpy(), probs)


def test_prefix_names_the_added_columns_beside_gold_ones(toy_run):
    _, run = toy_run
    batch_predictor = BatchPredictor(run, precision="fp32", prefix="pred_")
    gold = {name: [0] * 2 for name in batch_predictor.label_names}
    out = batch_predictor(pa.table({"text": TOY_TEXTS[:2], "labels": [["joy"], []], **gold}))
    added = prediction_columns(batch_predictor.label_names, "pred_")
    assert out.column_names[-len(added) :] == added
    assert out.column("labels").to_pylist() == [["joy"], []]  # the gold column, untouched


def test_columns_it_would_fill_are_refused(labelled):
    batch_predictor, _, _ = labelled
    with pytest.raises(DataError, match="already have the column.*labels.*prefix"):
        batch_predictor(pa.table({"text": ["hello"], "labels": [["joy"]]}))


def test_missing_text_column_and_bad_text_name_the_column(labelled):
    batch_predictor, _, _ = labelled
    with pytest.raises(DataError, match="no column 'text'.*body"):
        batch_predictor(pd.DataFrame({"body": ["hello"]}))
    with pytest.raises(DataError, match="column 'text', in a batch of 2 rows: text 2: expected a"):
        batch_predictor(pa.table({"text": ["hello", None]}))


def test_text_col_option_and_other_batch_formats(toy_run, labelled):
    _, run = toy_run
    _, probs, _ = labelled
    batch_predictor = BatchPredictor(run, precision="fp32", text_col="body")
    out = batch_predictor(pd.DataFrame({"body": TOY_TEXTS}))
    np.testing.assert_array_equal(out[batch_predictor.label_names].to_numpy(), probs)
    with pytest.raises(ConfigError, match="batch_format='pandas' or 'pyarrow'"):
        batch_predictor({"body": np.array(TOY_TEXTS)})


def test_options_are_checked_before_loading(toy_run):
    _, run = toy_run
    with pytest.raises(ConfigError, match="backend: expected one of torch, onnx"):
        BatchOptions(run=run, backend="tensorrt")
    with pytest.raises(ConfigError, match="onnx_model.*backend='onnx'"):
        BatchOptions(run=run, onnx_model=run / "model.onnx")
    with pytest.raises(ConfigError, match="batch_size: expected at least 1"):
        BatchOptions(run=run, batch_size=0)
    with pytest.raises(ConfigError, match="a label is named 'labels'"):
        prediction_columns(["joy", "labels"])
