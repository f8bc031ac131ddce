"""``predict_batch_udf`` on a local Spark session: a text column in, the probabilities and labels
``Predictor`` gives the same chunks out, row for row."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from helpers import SAMPLE
from multihot.inference.predictor import Predictor

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install pyspark)")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (java on PATH)", allow_module_level=True)

ROWS, CHUNK = 2000, 500


@pytest.fixture(scope="module")
def spark():
    """One executor thread on loopback, without the web UI; its Python workers run this
    interpreter (and so this checkout's multihot)."""
    from pyspark.sql import SparkSession

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("multihot-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    yield session
    session.stop()
    monkeypatch.undo()


def test_udf_gives_predictor_probabilities_and_labels(spark, toy_run):
    from multihot.batch.spark import predict_batch_udf

    _, run = toy_run
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines()[:ROWS]
    texts = [json.loads(line)["text"] for line in lines]
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id long, body string")
    label = predict_batch_udf(run, precision="fp32", chunk_size=CHUNK)
    rows = frame.coalesce(1).withColumn("pred", label("body")).select("id", "pred.*").collect()

    predictor = Predictor.load(run, precision="fp32")
    names = predictor.label_names
    assert list(rows[0].asDict()) == ["id", "labels", *names]
    assert [row["id"] for row in rows] == list(range(ROWS))
    # Spark hands the UDF the partition's rows in chunks of CHUNK, in order: the same chunks.
    probs = np.concatenate(
        [predictor.predict_proba(texts[i : i + CHUNK]) for i in range(0, ROWS, CHUNK)]
    )
    got = np.array([[row[name] for name in names] for row in rows], dtype=np.float32)
    np.testing.assert_array_equal(got, probs)
    wanted = predictor.labels.decode(predictor.thresholds.apply(probs))
    assert [list(row["labels"]) for row in rows] == wanted


def test_text_col_is_the_column_applied_to(toy_run):
    from multihot.batch.spark import predict_batch_udf
    from multihot.core.errors import ConfigError

    with pytest.raises(ConfigError, match="text_col: the UDF labels the column it is applied to"):
        predict_batch_udf(toy_run[1], text_col="body")
