"""Name -> level maps (agents' skills and languages, a conversation's or a rule's required skills): the
one validator, used by the frame decoder, the REST API and the CLI alike.

A name is 1-64 characters of ``A-Z a-z 0-9 _ . -`` (so it can appear in a routing requirement such as
``billing>=3``); a level is an integer from 1 to 5; a map has at most :data:`MAX_ENTRIES` names. Errors
are :class:`~chatserver.errors.Invalid` naming the field as ``skills.<name>`` (or ``skills`` for the
whole map).
"""

from __future__ import annotations

import re
from typing import Any

from chatserver.errors import Invalid

NAME_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"
NAME = re.compile(NAME_PATTERN)
MIN_LEVEL = 1
MAX_LEVEL = 5
MAX_ENTRIES = 100


def is_level_name(name: object) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def parse_levels(raw: Any, field: str) -> dict[str, int] | None:
    """A ``{name: level}`` map from decoded JSON (None when absent); raises Invalid otherwise."""
    if raw is None:
        return None
    what = field.rsplit(".", 1)[-1].rstrip("s")
    if not isinstance(raw, dict) or len(raw) > MAX_ENTRIES:
        raise Invalid(
            f"{field} must map at most {MAX_ENTRIES} names to levels {MIN_LEVEL}-{MAX_LEVEL}",
            data={"field": field},
        )
    out: dict[str, int] = {}
    for name, level in raw.items():
        if not is_level_name(name):
            raise Invalid(
                f"{what} name {name!r} must be 1-64 letters, digits, '_', '.' or '-'",
                data={"field": f"{field}.{name}"},
            )
        if not isinstance(level, int) or isinstance(level, bool) or not MIN_LEVEL <= level <= MAX_LEVEL:
            raise Invalid(
                f"{field}.{name} must be a level from {MIN_LEVEL} to {MAX_LEVEL}",
                data={"field": f"{field}.{name}"},
            )
        out[name] = level
    return out
