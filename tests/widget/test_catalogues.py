"""The widget's catalogues (widget/i18n/<lang>.json): every language has every key of the English one, no
empty text, and the same {placeholders}."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

I18N = Path(__file__).resolve().parents[2] / "widget" / "i18n"
REQUIRED = ("en", "de", "es", "fr", "it", "pt", "nl", "pl", "ru", "tr", "zh", "ja", "ko", "ar", "he")
PLACEHOLDER = re.compile(r"\{[a-z]+\}")


def catalogue(lang: str) -> dict[str, str]:
    data = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_languages_exist_and_match_the_widgets_list() -> None:
    assert {p.stem for p in I18N.glob("*.json")} >= set(REQUIRED)
    listed = re.search(r"const LANGS = \[([^\]]+)\]", (I18N.parent / "i18n.js").read_text())
    assert listed is not None
    assert {s.strip().strip('"') for s in listed.group(1).split(",")} == {p.stem for p in I18N.glob("*.json")}


@pytest.mark.parametrize("lang", sorted(p.stem for p in I18N.glob("*.json")))
def test_every_key_in_every_language(lang: str) -> None:
    english = catalogue("en")
    own = catalogue(lang)
    assert sorted(set(english) - set(own)) == [], f"{lang} lacks keys"
    assert sorted(set(own) - set(english)) == [], f"{lang} has unknown keys"
    for key, text in own.items():
        assert isinstance(text, str) and text.strip(), f"{lang}.{key} is empty"
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(english[key])), f"{lang}.{key}"
    if lang != "en":  # translated, not copied (a few words are the same in many languages)
        same = [k for k in own if own[k] == english[k]]
        assert len(same) <= 5, f"{lang}: untranslated {same}"


def test_system_lines_have_a_line_in_the_catalogue() -> None:
    """Every system line the server writes (its code) is said by the widget: ``sys.<code>`` in the English
    catalogue is the server's English text, with the same params; no ``sys.`` key the server never writes."""
    from chatserver.model.system_lines import TEMPLATES

    english = catalogue("en")
    said = {k.removeprefix("sys."): v for k, v in english.items() if k.startswith("sys.")}
    assert said == dict(TEMPLATES)
