"""Text preparation: the ``preprocess`` steps a run applies to every text before its tokenizer.

The steps are named in :data:`multihot.core.config.PREPROCESS_STEPS` and always run in that
order, whatever order they are given in:

========== ===========================================================================================
unicode    repair mojibake (``donâ€™t`` -> ``don't``: ftfy also straightens curly quotes) and other
           broken Unicode with ftfy, then NFC
html       drop HTML tags (``<br>``, ``<b>``), then unescape entities (``&lt;``, ``&amp;``): tags
           first, so an escaped ``&lt;HT>`` stays the text ``<HT>`` it stands for
urls       each web address -> ``URL``
emails     each e-mail address -> ``EMAIL``
users      each @handle (Twitter style) or u/name (Reddit) -> ``@USER``
numbers    each number (``1,250.5``, ``42``) -> ``NUMBER``; digits inside words stay (``mp3``)
emoji      each emoji -> its English name in words (``😂`` -> ``face with tears of joy``)
whitespace runs of spaces, tabs and newlines -> one space; none at either end
lowercase  lower case (refused where it changes nothing or undoes a cased encoder's training:
           see :func:`lowercase_problem`)
========== ===========================================================================================

:func:`prepare_texts` is called by :func:`multihot.data.encoding.tokenize` (through its
:class:`~multihot.data.encoding.Reading`), so training, evaluation, prediction, the server, the ONNX
backend and explanations all read a text the same way; the linear baseline calls it too.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Sequence

from multihot.core.config import PREPROCESS_STEPS, ModelConfig
from multihot.core.errors import ConfigError

PLACEHOLDERS = {"urls": "URL", "emails": "EMAIL", "users": "@USER", "numbers": "NUMBER"}
"""What ``urls``, ``emails``, ``users`` and ``numbers`` put in place of what they find: plain
words, which every vocabulary spells (a bracketed ``[URL]`` would be three word pieces)."""

_TAG = re.compile(r"<!--.*?-->|</?(?P<name>[A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]*)?/?>", re.DOTALL)
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    ]
)
_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"]+", re.IGNORECASE)
_URL_TAIL = ".,;:!?'\")]}"
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
_USER = re.compile(r"(?<![\w@/])@\w{1,30}|(?<![\w/])/?u/[\w-]{3,20}\b")
_NUMBER = re.compile(r"(?<![\w.,])[+-]?\d+(?:[.,]\d+)*(?![\w])")


def _unicode(text: str) -> str:
    import ftfy  # startup: only runs with the unicode step pay for importing it

    # html is its own step: ftfy would otherwise unescape entities in texts without tags.
    return unicodedata.normalize("NFC", ftfy.fix_text(text, unescape_html=False))


def _drop_tag(match: re.Match[str]) -> str:
    """A block-level tag (a paragraph, a line break) separates words; an inline one does not."""
    return " " if (match.group("name") or "").lower() in _BLOCK_TAGS else ""


def _html(text: str) -> str:
    return html.unescape(_TAG.sub(_drop_tag, text))


def _urls(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        url = match.group(0)
        kept = url.rstrip(_URL_TAIL)
        return PLACEHOLDERS["urls"] + url[len(kept) :]

    return _URL.sub(replace, text)


def _emoji(text: str) -> str:
    import emoji  # startup: only runs with the emoji step pay for importing it

    return emoji.replace_emoji(
        text, replace=lambda _, data: " " + data["en"].strip(":").replace("_", " ") + " "
    )


STEP_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "unicode": _unicode,
    "html": _html,
    "urls": _urls,
    "emails": lambda text: _EMAIL.sub(PLACEHOLDERS["emails"], text),
    "users": lambda text: _USER.sub(PLACEHOLDERS["users"], text),
    "numbers": lambda text: _NUMBER.sub(PLACEHOLDERS["numbers"], text),
    "emoji": _emoji,
    "whitespace": lambda text: " ".join(text.split()),
    "lowercase": str.lower,
}
"""Each step's function of one text, in :data:`PREPROCESS_STEPS` order."""


def prepare_text(text: str, steps: Sequence[str]) -> str:
    """``text`` after each of ``steps`` (checked names, as ``ModelConfig.preprocess`` holds them),
    in :data:`PREPROCESS_STEPS` order.

    Example:
        >>> prepare_text("Tom &amp; Jerry  <b>rock</b>!", ["whitespace", "html"])
        'Tom & Jerry rock!'
    """
    return prepare_texts([text], steps)[0]


def prepare_texts(texts: Sequence[str], steps: Sequence[str]) -> list[str]:
    """Every text after ``steps``; the texts themselves when there are none."""
    if not steps:
        return list(texts)
    functions = [STEP_FUNCTIONS[step] for step in PREPROCESS_STEPS if step in steps]
    prepared = []
    for text in texts:
        for function in functions:
            text = function(text)
        prepared.append(text)
    return prepared


def lowercase_problem(tokenizer, scratch: bool) -> str | None:
    """Why the ``lowercase`` step should not run with this tokenizer, or ``None`` when it may: a
    tokenizer that lower-cases already (an uncased pretrained one, and the scratch encoders'
    WordPiece) makes the step do nothing; a pretrained encoder that does not was trained on cased
    text on purpose, and lower case throws away what it learned from case. Only a cased tokenizer
    built for the run (``scratch``) would take it as it is."""
    lowers = tokenizer.tokenize("HELLO World") == tokenizer.tokenize("hello world")
    if lowers:
        return "the encoder's tokenizer lower-cases already, so the step would change nothing"
    if not scratch:
        return (
            "the encoder is cased: it was trained on text as written, and lower case throws away "
            "what it learned from capitals"
        )
    return None


def check_lowercase(config: ModelConfig, tokenizer, scratch: bool) -> None:
    """Refuse the ``lowercase`` step where :func:`lowercase_problem` finds one, unless
    ``force_lowercase``.

    Raises:
        ConfigError: the reason, and the setting that lower-cases anyway.
    """
    if "lowercase" not in (config.preprocess or []) or config.force_lowercase:
        return
    problem = lowercase_problem(tokenizer, scratch)
    if problem is not None:
        raise ConfigError(
            f"preprocess lowercase: {problem} (encoder {config.encoder}); leave the step out, "
            "or give force_lowercase (--force-lowercase) to lower-case anyway"
        )
