"""Quoted history and signatures folded away for display; the full text is kept beside it. Pure.

Quote detection is quotequail's (``On ... wrote:`` headers, ``>`` blocks, forwarded and Outlook
separators); the signature is what follows the standard ``-- `` delimiter line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import quotequail

__all__ = ["Folded", "fold"]

_SIG = re.compile(r"^-- ?$", re.MULTILINE)
MAX_FOLD_CHARS = 200_000
"""Longer texts are shown whole: the heuristics are not worth their time there."""


@dataclass(frozen=True, slots=True)
class Folded:
    visible: str
    """What agents see first."""
    quoted: str
    """The history folded away ("" when there was none)."""
    signature: str


def fold(text: str) -> Folded:
    if not text.strip() or len(text) > MAX_FOLD_CHARS:
        return Folded(text.strip(), "", "")
    visible, quoted = _split_quote(text)
    signature = ""
    matches = list(_SIG.finditer(visible))
    match = matches[-1] if matches else None
    if match is not None and visible[: match.start()].strip():
        signature = visible[match.end() :].strip()
        visible = visible[: match.start()]
    visible = visible.strip()
    if not visible:  # all quote (a bare forward): show it all rather than nothing
        return Folded(text.strip(), "", "")
    return Folded(visible, quoted, signature)


def _split_quote(text: str) -> tuple[str, str]:
    """(text before the quoted history, the history)."""
    try:
        unwrapped = quotequail.unwrap(text)
        if unwrapped and unwrapped.get("text_top") is not None:
            top = str(unwrapped["text_top"])
            at = text.find(top.rstrip()[-40:]) if top.strip() else -1
            rest = text[at + len(top.rstrip()[-40:]) :] if at >= 0 else text
            return top, rest.strip()
        parts = quotequail.quote(text)
    except Exception:  # a heuristic library: never let it lose a message
        return text, ""
    visible: list[str] = []
    quoted: list[str] = []
    for shown, chunk in parts:
        (visible if shown and not quoted else quoted).append(chunk)
    return "".join(visible), "".join(quoted)
