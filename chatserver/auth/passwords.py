"""Password rules, applied wherever a password is set (REST, ``create-agent``, ``reset-password``).

- at least :data:`MIN_LENGTH` and at most :data:`MAX_LENGTH` characters;
- not one of the most common passwords (``data/common_passwords.txt``), also when followed only by
  digits and symbols (``password123!``), case-insensitively;
- not the email, its local part, or anything containing the local part (case-insensitively; local parts
  of 4 characters or more, also with punctuation ignored: ``john.smith`` in ``JohnSmith-2024``), nor
  those followed only by digits and symbols.

:func:`password_problem` is pure: it returns the broken rule, or None.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

MIN_LENGTH = 10
MAX_LENGTH = 1000
_TRAILING = re.compile(r"[\W\d_]+$")
_ALNUM = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class PasswordProblem:
    rule: str
    """too_short, too_long, common or email."""
    message: str


@functools.cache
def common_passwords() -> frozenset[str]:
    text = resources.files("chatserver.auth").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _bases(password: str) -> set[str]:
    """The password and the password without its trailing digits and symbols, lowercased."""
    low = password.lower()
    return {low, _TRAILING.sub("", low)} - {""}


def password_problem(password: str, email: str | None, common: frozenset[str]) -> PasswordProblem | None:
    if len(password) < MIN_LENGTH:
        return PasswordProblem("too_short", f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        return PasswordProblem("too_long", f"the password must have at most {MAX_LENGTH} characters")
    bases = _bases(password)
    if bases & common:
        return PasswordProblem("common", "this password is one of the most common ones; choose another")
    if email:
        full = email.strip().lower()
        local = full.split("@", 1)[0]
        low = password.lower()
        squeezed, local_squeezed = _ALNUM.sub("", low), _ALNUM.sub("", local)
        if (
            full in bases
            or local in bases
            or full in low
            or (len(local) >= 4 and local in low)
            or (len(local_squeezed) >= 4 and local_squeezed in squeezed)
        ):
            return PasswordProblem("email", "the password must not be (or contain) your email address")
    return None
