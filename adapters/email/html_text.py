"""HTML mail -> safe plain text (what agents see; the original HTML is kept). Pure.

No markup survives: tags are dropped, ``<script>``, ``<style>`` and ``<head>`` with their content,
entities are decoded, block elements become line breaks and links keep their target in brackets.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import lxml.html
from lxml import etree

__all__ = ["html_to_text"]

_SKIP = {"script", "style", "head", "title", "template", "noscript", "svg", "object"}
_BLOCK = {
    "p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol", "h1", "h2", "h3",
    "h4", "h5", "h6", "blockquote", "pre", "hr", "form", "address", "center",
}  # fmt: skip
_VOID_SKIP = {"img", "input", "meta", "link", "base"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._quote = 0
        self._href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))
        elif tag in _BLOCK:
            self.parts.append("\n")
            if tag == "blockquote":
                self._quote += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag not in _VOID_SKIP:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href:
            href = self._href.pop()
            if href and href.startswith(("http://", "https://", "mailto:")) and not self._skip:
                self.parts.append(f" [{href}]")
        elif tag in _BLOCK:
            if tag == "blockquote":
                self._quote = max(0, self._quote - 1)
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._quote:
            data = data.replace("\n", "\n> ")
            if not self.parts or self.parts[-1].endswith("\n"):
                data = "> " + data.lstrip()
        self.parts.append(data)


_HSPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_LXML_MIN = 20_000
"""Longer HTML goes through lxml (libxml2, C): html.parser takes seconds on a 1 MB mail."""


def html_to_text(html: str) -> str:
    parts = _lxml_parts(html) if len(html) >= _LXML_MIN else None
    if parts is None:
        parser = _TextParser()
        try:
            parser.feed(html)
            parser.close()
        except (AssertionError, ValueError):  # HTMLParser's own failures on hostile markup
            pass
        parts = parser.parts
    text = "".join(parts)
    lines = [_HSPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _lxml_parts(html: str) -> list[str] | None:
    """The same events as _TextParser, from lxml's tree."""
    try:
        root = lxml.html.document_fromstring(html.encode("utf-8", "replace"))
    except (etree.ParserError, ValueError):
        return None
    out = _TextParser()
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if not isinstance(el.tag, str):  # a comment or a processing instruction: only its tail is text
            if event == "end" and el.tail:
                out.handle_data(el.tail)
            continue
        tag = el.tag
        if event == "start":
            out.handle_starttag(tag.lower(), [(k, v) for k, v in el.attrib.items()])
            if el.text and tag.lower() not in ("br",):
                out.handle_data(el.text)
        else:
            if tag.lower() not in ("br",) and tag.lower() not in _VOID_SKIP:
                out.handle_endtag(tag.lower())
            if el.tail:
                out.handle_data(el.tail)
    return out.parts
