"""The text preparation steps (``preprocess``): each on texts made to trip it, the fixed order
whatever order they are given in, ``none``, the names a config refuses, and when ``lowercase`` is
allowed."""

from __future__ import annotations

import pytest

from helpers import TINY, TOY_TEXTS
from multihot.core.config import DEFAULT_PREPROCESS, PREPROCESS_STEPS, ModelConfig, RunConfig
from multihot.core.errors import ConfigError
from multihot.data.preprocess import (
    PLACEHOLDERS,
    STEP_FUNCTIONS,
    check_lowercase,
    lowercase_problem,
    prepare_text,
    prepare_texts,
)


def step(name: str, text: str) -> str:
    return prepare_text(text, [name])


# ------------------------------------------------------------------------------------ each step
def test_the_steps_are_the_configs_in_its_order():
    assert list(STEP_FUNCTIONS) == list(PREPROCESS_STEPS)
    assert set(DEFAULT_PREPROCESS) <= set(PREPROCESS_STEPS)


def test_unicode_repairs_mojibake_and_composes():
    repaired = step("unicode", "Donâ€™t stop")
    assert "â€" not in repaired and repaired.replace("\u2019", "'") == "Don't stop"
    assert step("unicode", "cafe\u0301") == "caf\u00e9"  # NFC: one code point
    # Entities are the html step's: unicode alone leaves them.
    assert step("unicode", "Tom &amp; Jerry") == "Tom &amp; Jerry"
    assert step("unicode", "plain text, as it was") == "plain text, as it was"


def test_html_drops_tags_then_unescapes_entities():
    # Reuters' escaped tag stays the text it stands for: tags go before entities are unescaped.
    assert step("html", "Reuters &lt;HT> said") == "Reuters <HT> said"
    assert step("html", "Tom &amp; Jerry") == "Tom & Jerry"
    assert step("html", "&#39;quoted&#39; &quot;too&quot;") == "'quoted' \"too\""
    # A block-level tag separates words, an inline one does not; comments go.
    assert step("html", "one<br>two") == "one two"
    assert step("html", "one<br/>two<p>three</p>") == "one two three "
    assert step("html", "<b>bold</b>face") == "boldface"
    assert step("html", 'a <a href="https://x.org">link</a>') == "a link"
    assert step("html", "kept<!-- a comment\nover lines --> here") == "kept here"
    # Once: an escaped entity becomes the entity, not the character.
    assert step("html", "&amp;lt;") == "&lt;"
    assert step("html", "3 < 4 and 5 > 2") == "3 < 4 and 5 > 2"


def test_urls_become_one_word_and_keep_trailing_punctuation():
    url = PLACEHOLDERS["urls"]
    assert step("urls", "see https://example.com/a?b=1.") == f"see {url}."
    assert step("urls", "(www.foo.org/x), or ftp://f.net!") == f"({url}), or {url}!"
    assert step("urls", 'quoted "http://a.b/c" here') == f'quoted "{url}" here'
    assert step("urls", "HTTPS://LOUD.EXAMPLE/x;") == f"{url};"
    assert step("urls", "no address in example.com prose") == "no address in example.com prose"


def test_emails_become_one_word():
    email = PLACEHOLDERS["emails"]
    assert step("emails", "mail jane.doe+x@mail.example.co.uk, now") == f"mail {email}, now"
    assert step("emails", "a@b.io") == email
    assert step("emails", "not@an-address") == "not@an-address"


def test_handles_and_reddit_users_become_one_word():
    user = PLACEHOLDERS["users"]
    assert step("users", "@bob_1 said hi") == f"{user} said hi"
    assert step("users", "ask u/some_name or /u/other-guy") == f"ask {user} or {user}"
    assert step("users", "mail me@host not a handle") == "mail me@host not a handle"


def test_numbers_become_one_word_and_digits_in_words_stay():
    number = PLACEHOLDERS["numbers"]
    assert step("numbers", "pay 1,250.5 or 42") == f"pay {number} or {number}"
    assert step("numbers", "from -7 to +8, 2.5%") == f"from {number} to {number}, {number}%"
    assert step("numbers", "an mp3 of 3x and b2b") == "an mp3 of 3x and b2b"


def test_emoji_become_their_names():
    assert " ".join(step("emoji", "so funny 😂!").split()) == "so funny face with tears of joy !"
    assert step("emoji", "no emoji :)") == "no emoji :)"


def test_whitespace_runs_become_one_space():
    assert step("whitespace", "  a \t b\n\nc\r\n d  ") == "a b c d"
    assert step("whitespace", "\u00a0a\u2003b") == "a b"  # no-break and em spaces too


def test_lowercase():
    assert step("lowercase", "HeLLo World") == "hello world"


# ------------------------------------------------------------------------------------ the order
def test_steps_run_in_the_fixed_order_whatever_order_they_are_given_in():
    text = "<p>Mail  X@Y.COM or @Joe:</p> https://a.b/c2 costs 1,250&amp;up 😂"
    forward = prepare_text(text, list(PREPROCESS_STEPS))
    assert prepare_text(text, list(reversed(PREPROCESS_STEPS))) == forward
    # html before urls and numbers, emails before users, whitespace and lowercase last (the
    # placeholders are lower-cased too).
    assert forward == "mail email or @user: url costs number&up face with tears of joy"
    assert prepare_text("x@y.com then @joe", ["users", "emails"]) == "EMAIL then @USER"
    assert ModelConfig(preprocess=["whitespace", "users", "html"]).preprocess == [
        "html",
        "users",
        "whitespace",
    ]


def test_prepare_texts_prepares_each_and_none_leaves_them():
    texts = ["a &amp;  b", "<b>c</b>"]
    assert prepare_texts(texts, ["html", "whitespace"]) == ["a & b", "c"]
    assert prepare_texts(texts, []) == texts
    assert prepare_texts(TOY_TEXTS, list(DEFAULT_PREPROCESS)) == TOY_TEXTS


# ----------------------------------------------------------------------------------- the config
@pytest.mark.parametrize("none", [["none"], "none", ["None"], []])
def test_none_is_no_step(none):
    assert ModelConfig(preprocess=none).preprocess == []
    assert RunConfig.from_flat({"preprocess": none}).model.preprocess == []


def test_a_comma_separated_list_and_a_new_run_default():
    assert ModelConfig(preprocess="urls, HTML").preprocess == ["html", "urls"]
    assert ModelConfig().preprocess is None  # resolved to DEFAULT_PREPROCESS for a new run
    assert RunConfig().with_default_preprocess().model.preprocess == list(DEFAULT_PREPROCESS)
    given = RunConfig.from_flat({"preprocess": "urls"})
    assert given.with_default_preprocess().model.preprocess == ["urls"]


def test_a_run_saved_before_the_setting_reads_texts_as_they_are():
    assert RunConfig.from_saved({"model": {"max_length": 32}}).model.preprocess == []
    saved = RunConfig.from_saved({"model": {"preprocess": ["html"]}})
    assert saved.model.preprocess == ["html"]


def _assert_names_the_steps(message: str, bad: str) -> None:
    assert repr(bad) in message
    assert ", ".join(PREPROCESS_STEPS) in message and "none" in message


@pytest.mark.parametrize(
    ("given", "bad"),
    [
        (["html", "stemming"], "stemming"),
        ("html,stemming", "stemming"),
        (["urls", "none"], "none"),  # none is alone or nothing
    ],
)
def test_an_unknown_step_names_the_allowed_ones(given, bad):
    with pytest.raises(ConfigError, match="preprocess") as err:
        ModelConfig(preprocess=given)
    _assert_names_the_steps(str(err.value), bad)
    with pytest.raises(ConfigError, match="preprocess") as err:
        RunConfig.from_flat({"preprocess": given}, source="config.yaml")
    assert str(err.value).startswith("config.yaml: ")
    _assert_names_the_steps(str(err.value), bad)


# ------------------------------------------------------------------------------------ lowercase
@pytest.fixture(scope="module")
def cased_tokenizer():
    from multihot.modeling.encoders import train_wordpiece

    return train_wordpiece(TOY_TEXTS * 2, vocab_size=100, lowercase=False)


@pytest.fixture(scope="module")
def lowering_tokenizer():
    from multihot.modeling.encoders import train_wordpiece

    return train_wordpiece(TOY_TEXTS * 2, vocab_size=100, lowercase=True)


def lowercase_config(**settings) -> ModelConfig:
    return ModelConfig(encoder="some/checkpoint", preprocess=["html", "lowercase"], **settings)


def test_lowercase_is_refused_for_a_cased_pretrained_encoder(cased_tokenizer):
    assert "cased" in (lowercase_problem(cased_tokenizer, scratch=False) or "")
    with pytest.raises(ConfigError, match="force_lowercase") as err:
        check_lowercase(lowercase_config(), cased_tokenizer, scratch=False)
    assert "cased" in str(err.value) and "some/checkpoint" in str(err.value)
    check_lowercase(lowercase_config(force_lowercase=True), cased_tokenizer, scratch=False)


@pytest.mark.parametrize("scratch", [False, True])
def test_lowercase_is_refused_where_the_tokenizer_lower_cases_already(lowering_tokenizer, scratch):
    assert "lower-cases already" in (lowercase_problem(lowering_tokenizer, scratch) or "")
    with pytest.raises(ConfigError, match="lower-cases already"):
        check_lowercase(lowercase_config(), lowering_tokenizer, scratch)
    check_lowercase(lowercase_config(force_lowercase=True), lowering_tokenizer, scratch)


def test_lowercase_is_allowed_for_a_scratch_cased_tokenizer(cased_tokenizer):
    assert lowercase_problem(cased_tokenizer, scratch=True) is None
    check_lowercase(lowercase_config(), cased_tokenizer, scratch=True)


def test_without_the_step_nothing_is_checked(lowering_tokenizer):
    check_lowercase(ModelConfig(preprocess=["html"]), lowering_tokenizer, scratch=False)
    check_lowercase(ModelConfig(), lowering_tokenizer, scratch=False)


def test_a_scratch_run_refuses_lowercase_as_its_tokenizer_lowercases(toy_file):
    from multihot import Classifier

    with pytest.raises(ConfigError, match="lower-cases already"):
        Classifier.train(
            toy_file, toy_file, epochs=1, batch_size=8, preprocess=["lowercase"], **TINY
        )
