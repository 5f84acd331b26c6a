"""Every word the studio shows, in every language it speaks: one catalogue per language, used by the page and by
the server.

A catalogue is a JSON file in studio/core/locales/ named by its language code (`en.json`, `zh.json`), keyed by message
(`advice.lr_high`) and by settings field (`<field>.label`, `<field>.help`, `<field>.advice`). English field text is
the field's own metadata in studio/core/config.py (as TRL keeps its help there); every other language carries it in
its catalogue. A new language is one new file with the same keys (tests/test_text.py checks keys and
placeholders), named by a code Gradio's page knows (ar, de, fr, ja, ko, ...; `locale.aliases` lists the browser
codes it answers to, as zh answers to zh-CN and zh-TW). A folder named in the environment variable STUDIO_LOCALES
adds catalogues without touching the package, so a translator can try one out (tests/test_locales.py does).

Labels reach the page through Gradio's `gr.I18n` (studio/ui/text.py); a message computed on the server is a
`Msg`: a string that reads as English wherever it is used as text (CLI, logs, plan.json, tests) and that the UI
renders again in the browser's language with `render(message, lang)`. Templates have named fields (`{rows}`,
`{share:.0%}`), so each language orders the sentence its own way.

No gradio and no torch here: compute modules (config, data, stats, advice) import this.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

WORD = re.compile(r"[\u4e00-\u9fff]|[^\W\d_]+|\d+")  # a word; a Chinese character is one (character-level scores)
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")  # Chinese characters: the language checks count them
LATIN = re.compile(r"[A-Za-z]")


def script_language(text: str) -> str:
    """'zh', 'en' or 'other' for one text: Chinese where its Chinese characters are at least a quarter of its
    Latin letters (names and terms in Latin letters run through Chinese text)."""
    cjk, latin = len(CJK.findall(text)), len(LATIN.findall(text))
    if cjk == 0 and latin == 0:
        return "other"
    return "zh" if cjk >= latin / 4 else "en"


SOURCE_LANGUAGE = "en"  # the language every key is written in first, and the fallback for a missing one
LOCALES_DIR = Path(__file__).resolve().parent / "locales"


def load_catalogues(*folders: Path) -> dict[str, dict[str, str]]:
    """{language code: {key: text}} from every `<code>.json` in the folders; a later folder's file wins."""
    catalogues: dict[str, dict[str, str]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            catalogues[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return catalogues


def _folders() -> list[Path]:
    extra = os.environ.get("STUDIO_LOCALES", "")
    return [LOCALES_DIR, *(Path(p) for p in extra.split(os.pathsep) if p)]


CATALOGUES = load_catalogues(*_folders())
TEXT = CATALOGUES[SOURCE_LANGUAGE]  # the keys a message may have


def text_in(key: str, lang: str) -> str:
    """One catalogue entry in `lang`, the source language's where that catalogue lacks it."""
    return CATALOGUES.get(lang, TEXT).get(key) or TEXT[key]


class Msg(str):
    """A message with its key and fields. As a `str` it is the English text, so code that only logs or compares
    it needs nothing new; `render(msg, "zh")` gives the Chinese. Fields may themselves be messages (or lists of
    them), rendered in the same language."""

    key: str
    fields: dict

    def __new__(cls, key: str, **fields):
        if key not in TEXT:
            raise KeyError(f"no text for {key!r}")  # a typo must fail in tests, not show a key to a user
        obj = super().__new__(cls, _format(key, "en", fields))
        obj.key, obj.fields = key, fields
        return obj

    def __reduce__(self):  # pickles (and deep-copies) as a message, not as its English text
        return (_rebuild, (self.key, self.fields))

    def to_json(self) -> dict:
        return {"key": self.key, "fields": {k: _field_json(v) for k, v in self.fields.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "Msg":
        return cls(data["key"], **{k: _field_from_json(v) for k, v in data.get("fields", {}).items()})


def _rebuild(key, fields):
    return Msg(key, **fields)


def _field_json(value):
    if isinstance(value, Msg):
        return {"__msg__": value.to_json()}
    if isinstance(value, (list, tuple)):
        return [_field_json(v) for v in value]
    return value


def _field_from_json(value):
    if isinstance(value, dict) and "__msg__" in value:
        return Msg.from_json(value["__msg__"])
    if isinstance(value, list):
        return [_field_from_json(v) for v in value]
    return value


def render(value, lang: str = "en"):
    """A message in `lang`; lists of messages are joined; anything else is returned as it is (numbers keep their
    type, so format specs such as `{share:.0%}` still apply)."""
    if isinstance(value, Msg):
        return _format(value.key, lang, value.fields)
    if isinstance(value, (list, tuple)):
        return text_in("list.separator", lang).join(str(render(v, lang)) for v in value)
    return value


def _format(key: str, lang: str, fields: dict) -> str:
    template = text_in(key, lang)
    if key == "paragraphs":  # paragraphs of Markdown, not items of a sentence
        return "\n\n".join(str(render(v, lang)) for v in fields["items"])
    return template.format(**{name: render(value, lang) for name, value in fields.items()}) if fields else template



def word(kind: str, value: str):
    """A code word shown to people ("finished", "merged"): its message where the table has one ("state.finished"),
    else the word itself (an unknown status from an older run stays readable)."""
    key = f"{kind}.{value}"
    return Msg(key) if key in TEXT else value


def on_off(flag: bool) -> Msg:
    return Msg("on" if flag else "off")


def tr(key: str, lang: str = "en", **fields) -> str:
    """Screen text or a template, straight to a string in `lang`."""
    return _format(key, lang, fields)


def language_of(accept_language: str | None) -> str:
    """The browser's first language, as the page's own i18n picks it: a language with a catalogue by its primary
    subtag (any zh-* is Chinese), else the source language."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip()
    primary = first.split("-")[0].lower()
    return primary if primary in CATALOGUES else SOURCE_LANGUAGE


def reason_of(err: BaseException) -> Msg:
    """What a reader is told about an exception: the studio's own message where it raised one, else the kind of
    failure in plain words. Python's text (English, often with paths and the input echoed) goes to the server's
    log in one line, never to the page."""
    import errno
    import logging

    if err.args and isinstance(err.args[0], Msg):
        return err.args[0]
    logging.getLogger("studio").warning("%s: %s", type(err).__name__, str(err)[:300].replace("\n", " "))
    name = type(err).__name__
    if isinstance(err, MemoryError) or name == "OutOfMemoryError" or "out of memory" in str(err).lower():
        return Msg("reason.memory")
    if isinstance(err, ConnectionError) or any(word in name for word in ("Connection", "Timeout", "HTTP", "Offline",
                                                                          "LocalEntryNotFound", "RepositoryNotFound")):
        return Msg("reason.network")
    if isinstance(err, OSError):
        return Msg("reason.disk" if err.errno == errno.ENOSPC else "reason.file")
    return Msg("reason.other")
