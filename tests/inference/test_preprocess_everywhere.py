"""A run's text preparation steps are applied wherever it reads a text, exactly once: the trained
classifier, the loaded one, ``multihot predict``, the server and the ONNX graph give the same
probabilities for texts with entities, tags, URLs and runs of whitespace; a text and its prepared
form read the same; runs saved before the steps existed read texts as they are; and a graph or
weights whose steps config.json no longer names are refused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from helpers import TINY, TOY_LABELS, TOY_TEXTS, Server, copy_run, invoke, write_jsonl
from multihot import Classifier, Predictor
from multihot.core.errors import MultihotError, RunDirError
from multihot.data.encoding import tokenize
from multihot.data.preprocess import prepare_text, prepare_texts

STEPS = ["html", "urls", "whitespace"]
MESSY = [
    "i love &amp; adore  this\n\n so much https://example.com/love?x=1.",
    "<p>so angry</p> right&nbsp;now &lt;HT>",
    "awful   service &amp;lt; and\trude staff www.example.org/review",
    "what a <b>great</b> day",
]
"""Texts each step changes; the third is changed differently by html once and twice."""
TEXTS = MESSY + TOY_TEXTS[:2]


def train(data, output, **settings) -> Classifier:
    settings = {**TINY, "epochs": 2, "lr": 2e-3, "batch_size": 4, **settings}
    return Classifier.train(data, data, output=output, warmup_ratio=0.0, **settings)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The toy texts with entities, tags and URLs added, so the steps change the training texts."""
    texts = [f"{t} &amp; <b>more</b>  https://x.org/{i}." for i, t in enumerate(TOY_TEXTS)]
    return write_jsonl(tmp_path_factory.mktemp("data") / "messy.jsonl", texts, TOY_LABELS)


@pytest.fixture(scope="module")
def steps_run(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "steps"
    return train(data, run, preprocess=STEPS), run


@pytest.fixture(scope="module")
def plain_run(data, tmp_path_factory):
    """A run trained with ``preprocess none``: texts read as they are, as before the steps."""
    run = tmp_path_factory.mktemp("runs") / "plain"
    return train(data, run, preprocess=["none"]), run


def probs_of(rows, names) -> np.ndarray:
    return np.array([[row["probs"][name] for name in names] for row in rows])


# -------------------------------------------------------------------------------- everywhere
def test_the_steps_are_saved_with_the_run(steps_run, plain_run):
    clf, run = steps_run
    assert clf.config.model.preprocess == STEPS
    assert json.loads((run / "config.json").read_text())["model"]["preprocess"] == STEPS
    assert Classifier.load(run).backend.reading.preprocess == tuple(STEPS)
    assert plain_run[0].config.model.preprocess == []
    assert Classifier.load(plain_run[1]).backend.reading.preprocess == ()


def test_every_path_gives_the_same_probabilities(steps_run, tmp_path):
    clf, run = steps_run
    names = clf.label_names
    reference = clf.predict_proba(TEXTS, precision="fp32")

    loaded = Classifier.load(run)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS, precision="fp32"), reference, atol=1e-6)
    predictor = Predictor.load(run, precision="fp32")
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), reference, atol=1e-6)

    texts = sum((["--text", t] for t in TEXTS), [])
    result = invoke("predict", run, *texts, "--precision", "fp32", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == TEXTS  # the text as given, not as prepared
    np.testing.assert_allclose(probs_of(rows, names), reference, atol=1e-5)

    exported = copy_run(run, tmp_path / "exported")
    check = write_jsonl(tmp_path / "check.jsonl", MESSY, [[] for _ in MESSY])
    result = invoke("export", exported, "--check-data", check)  # checked on prepared texts too
    assert result.exit_code == 0, result.output
    graph = Predictor.load(exported, backend="onnx")
    assert graph.engine.reading.preprocess == tuple(STEPS)
    np.testing.assert_allclose(graph.predict_proba(TEXTS), reference, atol=1e-4)

    server = Server(run, "--precision", "fp32")
    try:
        status, _, answer = server.post({"texts": TEXTS, "return_probs": True})
    finally:
        server.stop()
    assert status == 200, answer
    np.testing.assert_allclose(probs_of(answer["predictions"], names), reference, atol=1e-5)


def test_the_steps_are_applied_exactly_once(steps_run):
    clf, _ = steps_run
    backend = clf.backend
    once = prepare_texts(TEXTS, STEPS)
    twice = prepare_texts(once, STEPS)
    assert once[2] != twice[2]  # "&amp;lt;" is "&lt;" once, "<" twice: the text tells them apart
    unprepared = replace(backend.reading, preprocess=())
    assert backend.encode(TEXTS) == tokenize(backend.tokenizer, once, unprepared)
    assert backend.encode(TEXTS) != tokenize(backend.tokenizer, TEXTS, unprepared)

    reference = clf.predict_proba(TEXTS, precision="fp32")
    # The prepared texts read the same where preparing again changes nothing.
    same = [i for i in range(len(TEXTS)) if once[i] == twice[i]]
    np.testing.assert_allclose(
        clf.predict_proba([once[i] for i in same], precision="fp32"), reference[same], atol=1e-6
    )
    # The model read the once-prepared texts: what it gives for them read with no steps.
    backend.reading = unprepared
    try:
        np.testing.assert_allclose(clf.predict_proba(once, precision="fp32"), reference, atol=1e-6)
    finally:
        backend.reading = replace(unprepared, preprocess=tuple(STEPS))


def test_training_with_no_steps_reads_texts_as_they_are(plain_run):
    clf, _ = plain_run
    backend = clf.backend
    assert backend.encode(MESSY) == tokenize(backend.tokenizer, MESSY, backend.reading)
    assert backend.encode(MESSY) != tokenize(
        backend.tokenizer, prepare_texts(MESSY, STEPS), backend.reading
    )
    assert np.isfinite(clf.predict_proba(TEXTS, precision="fp32")).all()


# ---------------------------------------------------------------------------------- old runs
def _drop_preprocess(run) -> None:
    config = json.loads((run / "config.json").read_text())
    del config["model"]["preprocess"]
    (run / "config.json").write_text(json.dumps(config))


def test_a_run_saved_before_the_steps_reads_texts_as_they_are(plain_run, tmp_path):
    clf, src = plain_run
    run = copy_run(src, tmp_path / "old")
    _drop_preprocess(run)
    old = Classifier.load(run)
    assert old.config.model.preprocess == [] and old.backend.reading.preprocess == ()
    np.testing.assert_allclose(
        old.predict_proba(TEXTS, precision="fp32"), clf.predict_proba(TEXTS, precision="fp32")
    )


def test_weights_saved_before_their_steps_were_recorded_still_load(steps_run, tmp_path):
    """A run trained with steps before the weights recorded them (at e03db8d) loads with the steps
    of its config.json; edited to say none, it reads plain texts as before and the others as they
    are."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from multihot.artifacts.runs import WEIGHTS_META

    clf, src = steps_run
    run = copy_run(src, tmp_path / "e03db8d")
    weights = run / "model.safetensors"
    with safe_open(str(weights), framework="np") as fh:
        metadata = fh.metadata()
    record = json.loads(metadata[WEIGHTS_META])
    assert record["reading"]["preprocess"] == STEPS
    del record["reading"]["preprocess"]
    save_file(load_file(str(weights)), str(weights), {**metadata, WEIGHTS_META: json.dumps(record)})

    reference = clf.predict_proba(TEXTS, precision="fp32")
    loaded = Classifier.load(run)
    assert loaded.config.model.preprocess == STEPS
    np.testing.assert_allclose(loaded.predict_proba(TEXTS, precision="fp32"), reference, atol=1e-6)

    _drop_preprocess(run)
    edited = Classifier.load(run)
    assert edited.backend.reading.preprocess == ()
    plain = [i for i, text in enumerate(TEXTS) if prepare_text(text, STEPS) == text]
    assert plain and len(plain) < len(TEXTS)
    np.testing.assert_allclose(
        edited.predict_proba([TEXTS[i] for i in plain], precision="fp32"),
        reference[plain],
        atol=1e-6,
    )


def test_weights_trained_with_steps_refuse_a_config_without_them(steps_run, tmp_path):
    run = copy_run(steps_run[1], tmp_path / "lost")
    _drop_preprocess(run)
    with pytest.raises(RunDirError, match="preprocess") as err:
        Classifier.load(run)
    assert "html" in str(err.value)


# ---------------------------------------------------------------------------------- the graph
@pytest.mark.parametrize(
    ("trained", "edited"), [("steps", ["html"]), ("steps", []), ("plain", STEPS)]
)
def test_a_graph_exported_with_other_steps_is_refused(
    trained, edited, steps_run, plain_run, tmp_path
):
    from multihot import export as exporting

    src = (steps_run if trained == "steps" else plain_run)[1]
    run = copy_run(src, tmp_path / trained)
    exporting.export_onnx(run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["preprocess"] = edited
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(MultihotError, match="preprocess.*export this run again"):
        Predictor.load(run, backend="onnx")


# ----------------------------------------------------------------------------------- explain
EXPLAINED = "so  angry &amp;lt;b&amp;gt; <i>right</i>\tnow"
"""html once gives ``&lt;b&gt;`` (the text of an escaped tag), twice ``<b>``."""


def test_an_explanation_is_of_the_text_as_prepared_once(steps_run):
    clf, _ = steps_run
    backend = clf.backend
    prepared = prepare_text(EXPLAINED, STEPS)
    assert prepared == "so angry &lt;b&gt; right now" != prepare_text(prepared, STEPS)

    explanation = clf.explain(EXPLAINED, top_k=1, n_steps=8)
    assert explanation.text == prepared and explanation.prepared
    assert explanation.prepared_from == EXPLAINED and explanation.steps == STEPS
    ids = tokenize(backend.tokenizer, [prepared], replace(backend.reading, preprocess=()))[0]
    for entry in explanation.labels:
        assert [t.token for t in entry.tokens] == backend.tokenizer.convert_ids_to_tokens(ids)
    probs = clf.predict_proba([EXPLAINED], precision="fp32")[0]
    for entry in explanation.labels:
        assert entry.probability == pytest.approx(
            probs[clf.label_names.index(entry.label)], abs=1e-5
        )
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["text"] == prepared and data["prepared_from"] == EXPLAINED

    # A text the steps leave alone is explained as it is given, and says nothing of them.
    plain = clf.explain("so angry right now", top_k=1, n_steps=8)
    assert plain.text == "so angry right now" and not plain.prepared and plain.steps == STEPS


def test_a_text_the_steps_empty_is_explained_as_no_tokens(steps_run):
    clf, _ = steps_run
    explanation = clf.explain("<br>  <p></p>", n_steps=8)
    assert explanation.text == "" and explanation.prepared_from == "<br>  <p></p>"
    assert all(t.special for entry in explanation.labels for t in entry.tokens)


def test_multihot_explain_says_it_explained_the_prepared_text(steps_run, tmp_path):
    from multihot.report.explanation import prepared_line

    clf, run = steps_run
    prepared = prepare_text(EXPLAINED, STEPS)
    page = tmp_path / "e.html"
    result = invoke("explain", run, EXPLAINED, "--steps", 8, "--html", page)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first == f"explained as prepared (steps: html, urls, whitespace): {prepared}"
    html = page.read_text()
    assert '<p class="source">so angry &amp;lt;b&amp;gt; right now</p>' in html
    assert 'class="prepared"' in html and "&amp;amp;lt;b&amp;amp;gt;" in html  # as given

    as_json = invoke("explain", run, EXPLAINED, "--steps", 8, "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert (data["text"], data["prepared_from"], data["steps"]) == (prepared, EXPLAINED, STEPS)

    plain = invoke("explain", run, "so angry right now", "--steps", 8)
    assert plain.exit_code == 0, plain.output
    assert "explained as prepared" not in plain.stdout
    assert prepared_line(clf.explain("so angry right now", n_steps=8)) is None


def test_a_baseline_explanation_is_of_the_text_its_vectorizer_read(baseline_run):
    clf = Classifier.load(baseline_run)
    steps = list(getattr(clf.backend.config, "preprocess", None) or [])
    explanation = clf.explain("i LOVE &amp; this")
    assert explanation.steps == steps
    assert explanation.text == prepare_text("i LOVE &amp; this", steps)
    words = [t.token for t in explanation.labels[0].tokens]
    assert words == clf.backend.counter.build_analyzer()("i LOVE &amp; this")[: len(words)]


# ------------------------------------------------------------------------------ Hugging Face
@pytest.mark.parametrize("steps", [STEPS, []], ids=["steps", "none"])
def test_a_hugging_face_export_names_the_steps_its_users_must_apply(steps, data, tmp_path, caplog):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from multihot import export as exporting

    run = tmp_path / "pooler"
    clf = train(data, run, pooling="pooler", preprocess=steps or ["none"])
    out = tmp_path / "hf"
    with caplog.at_level("WARNING", logger="multihot.export.hf"):
        # The check tokenizes the same prepared texts with the run's and the exported tokenizer.
        result = exporting.export_hf(run, out, check_texts=MESSY)
    assert result.parity.max_abs_diff <= 1e-4

    config = json.loads((out / "config.json").read_text())
    assert config["multihot_preprocess"] == steps
    warned = [r.getMessage() for r in caplog.records if r.name == "multihot.export.hf"]
    if steps:
        readme = (out / "README.md").read_text()
        assert "`html`, `urls`, `whitespace`" in readme
        assert "multihot.data.preprocess.prepare_texts" in readme
        assert len(warned) == 1 and "html, urls, whitespace" in warned[0]
    else:
        assert not (out / "README.md").exists() and warned == []

    # Prepared as the config says, the exported model gives the run's probabilities.
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    prepared = prepare_texts(TEXTS, model.config.multihot_preprocess)
    batch = tokenizer(prepared, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.sigmoid(model(**batch).logits).numpy()
    np.testing.assert_allclose(probs, clf.predict_proba(TEXTS, precision="fp32"), atol=1e-5)
