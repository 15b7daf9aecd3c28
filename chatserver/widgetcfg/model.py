"""Widget settings of an inbox as plain data, with pure checks (no I/O).

Stored in the inbox's JSON ``config`` under ``"widget"``; set by admins with ``PATCH /api/v1/inboxes/{id}``
(``{"widget": {...}}``) or ``chatserver update-inbox``. The public view (``GET /api/v1/widget/config``) is
:func:`public_view`: never the identity secret, never anything but what the widget shows.

A pre-chat field is ``{key, type, label?, required?, options?}`` where ``type`` is one of
:data:`FIELD_TYPES`; ``name``, ``email`` and ``phone`` answers also go to the contact, and every answer
goes to the conversation's ``fields`` (what routing rules match on).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from chatserver.errors import Invalid
from chatserver.model.types import Agent
from chatserver.routing.config import DAYS, ConfigProblem, parse_hours, parse_timezone

FIELD_TYPES = ("name", "email", "phone", "dropdown", "text")
CONTACT_FIELDS = ("name", "email", "phone")
POSITIONS = ("right", "left")
TEXT_KEYS = ("title", "subtitle", "greeting")
MAX_FIELDS = 10
MAX_OPTIONS = 30
MAX_TEXT = 500
MAX_ANSWER = 500
MAX_FACES = 3
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_LANG = re.compile(r"^[a-z]{2,3}$")
_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
EMAIL = re.compile(r"^[^@\s<>\"(),;:]{1,64}@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]{2,}$")
PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{4,24}$")


@dataclass(frozen=True, slots=True)
class FormField:
    key: str
    type: str
    label: str | None = None
    """Shown as the field's label; None: the widget's catalogue label for the type."""
    required: bool = False
    options: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"key": self.key, "type": self.type, "required": self.required}
        if self.label is not None:
            wire["label"] = self.label
        if self.type == "dropdown":
            wire["options"] = list(self.options)
        return wire


@dataclass(frozen=True, slots=True)
class WidgetSettings:
    color: str | None = None
    position: str | None = None
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Language -> {title, subtitle, greeting}; the key ``"default"`` holds the admin's own texts, used
    (translated, when a provider is configured) for languages without an entry."""
    default_language: str = "en"
    """The language of the ``default`` texts."""
    timezone: str | None = None
    hours: Mapping[str, tuple[tuple[str, str], ...]] | None = None
    prechat: tuple[FormField, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The stored form (also the admin view)."""
        return {
            "color": self.color,
            "position": self.position,
            "texts": {lang: dict(t) for lang, t in self.texts.items()},
            "default_language": self.default_language,
            "timezone": self.timezone,
            "hours": {d: [list(i) for i in v] for d, v in self.hours.items()}
            if self.hours is not None
            else None,
            "prechat": [f.to_wire() for f in self.prechat],
        }

    def is_open(self, now: float | None = None) -> bool:
        """Inside business hours (no hours: always)."""
        if self.hours is None:
            return True
        local = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(self.timezone or "UTC"))
        clock = local.strftime("%H:%M")
        return any(start <= clock < end for start, end in self.hours.get(DAYS[local.weekday()], ()))


def _problem(name: str, message: str) -> Invalid:
    return Invalid(message, data={"field": f"widget.{name}"})


def _text(raw: Any, name: str, max_len: int = MAX_TEXT) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > max_len:
        raise _problem(name, f"{name} is a string of at most {max_len} characters")
    return raw.strip() or None


def _field(raw: Any, i: int) -> FormField:
    where = f"prechat[{i}]"
    if not isinstance(raw, Mapping):
        raise _problem(where, "each pre-chat field is an object {key, type, label?, required?, options?}")
    unknown = set(raw) - {"key", "type", "label", "required", "options"}
    if unknown:
        raise _problem(
            f"{where}.{sorted(unknown)[0]}", f"unknown pre-chat field property {sorted(unknown)[0]!r}"
        )
    kind = raw.get("type")
    if kind not in FIELD_TYPES:
        raise _problem(f"{where}.type", f"type must be one of {', '.join(FIELD_TYPES)}")
    key = raw.get("key", kind if kind in CONTACT_FIELDS else None)
    if not isinstance(key, str) or not _KEY.match(key):
        raise _problem(f"{where}.key", "key is 1-32 of a-z, 0-9 and _, starting with a letter")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise _problem(f"{where}.required", "required is true or false")
    options: tuple[str, ...] = ()
    if kind == "dropdown":
        raw_opts = raw.get("options")
        if (
            not isinstance(raw_opts, list)
            or not 1 <= len(raw_opts) <= MAX_OPTIONS
            or not all(isinstance(o, str) and 0 < len(o.strip()) <= 100 for o in raw_opts)
        ):
            raise _problem(f"{where}.options", f"a dropdown needs 1-{MAX_OPTIONS} options (strings)")
        options = tuple(o.strip() for o in raw_opts)
        if len(set(options)) != len(options):
            raise _problem(f"{where}.options", "options must be distinct")
    elif raw.get("options") is not None:
        raise _problem(f"{where}.options", "only a dropdown has options")
    return FormField(key, kind, _text(raw.get("label"), f"{where}.label", 100), required, options)


def _texts(raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, Mapping):
        raise _problem(
            "texts", 'texts maps a language ("de", or "default") to {title?, subtitle?, greeting?}'
        )
    out: dict[str, dict[str, str]] = {}
    for lang, entry in raw.items():
        if lang != "default" and not (isinstance(lang, str) and _LANG.match(lang)):
            raise _problem("texts", f"{lang!r} is not a language code (two or three letters) or default")
        if not isinstance(entry, Mapping) or set(entry) - set(TEXT_KEYS):
            raise _problem(f"texts.{lang}", f"each language has only {', '.join(TEXT_KEYS)}")
        texts = {k: v for k in TEXT_KEYS if (v := _text(entry.get(k), f"texts.{lang}.{k}")) is not None}
        if texts:
            out[lang] = texts
    return out


def parse_widget(raw: Any, current: WidgetSettings | None = None) -> WidgetSettings:
    """Apply a ``widget`` object (a partial update: absent keys keep ``current``; null clears) and
    validate it; Invalid names the bad field as ``widget.<name>``."""
    base = current or WidgetSettings()
    if not isinstance(raw, Mapping):
        raise _problem("", "widget is an object")
    allowed = {"color", "position", "title", "subtitle", "greeting", "texts", "default_language"}
    allowed |= {"timezone", "hours", "prechat"}
    unknown = set(raw) - allowed
    if unknown:
        name = sorted(unknown)[0]
        raise _problem(name, f"unknown widget setting {name!r}; known: {', '.join(sorted(allowed))}")
    values: dict[str, Any] = {}
    if "color" in raw:
        color = raw["color"]
        if color is not None and not (isinstance(color, str) and _COLOR.match(color)):
            raise _problem("color", "color is #rgb or #rrggbb")
        values["color"] = color
    if "position" in raw:
        if raw["position"] is not None and raw["position"] not in POSITIONS:
            raise _problem("position", "position is right or left")
        values["position"] = raw["position"]
    if "default_language" in raw:
        lang = raw["default_language"]
        if not (isinstance(lang, str) and _LANG.match(lang)):
            raise _problem("default_language", "default_language is a language code such as en")
        values["default_language"] = lang
    texts = {k: dict(v) for k, v in base.texts.items()}
    if "texts" in raw:
        texts = _texts(raw["texts"] or {})
    own = dict(texts.get("default", {}))
    for key in TEXT_KEYS:  # title/subtitle/greeting at the top level: the default texts
        if key in raw:
            value = _text(raw[key], key)
            if value is None:
                own.pop(key, None)
            else:
                own[key] = value
    if own:
        texts["default"] = own
    else:
        texts.pop("default", None)
    values["texts"] = texts
    if "timezone" in raw:
        values["timezone"] = _tz(raw["timezone"]) if raw["timezone"] is not None else None
    if "hours" in raw:
        try:
            values["hours"] = parse_hours(raw["hours"])
        except ConfigProblem as exc:
            raise _problem(exc.field, str(exc)) from exc
    if "prechat" in raw:
        fields = raw["prechat"] or []
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            raise _problem("prechat", f"prechat is a list of at most {MAX_FIELDS} fields")
        parsed = tuple(_field(f, i) for i, f in enumerate(fields))
        if len({f.key for f in parsed}) != len(parsed):
            raise _problem("prechat", "pre-chat field keys must be distinct")
        values["prechat"] = parsed
    settings = replace(base, **values)
    if settings.hours is not None and settings.timezone is None:
        raise _problem("timezone", "business hours need a timezone, e.g. Europe/Berlin")
    return settings


def _tz(raw: Any) -> str:
    try:
        return parse_timezone(raw)
    except ConfigProblem as exc:
        raise _problem("timezone", str(exc)) from exc


def load_widget(stored: Any) -> WidgetSettings:
    """The settings kept in an inbox's config (already validated when saved; bad data: defaults)."""
    if not isinstance(stored, Mapping):
        return WidgetSettings()
    raw = {k: v for k, v in stored.items() if v is not None}
    try:
        return parse_widget(raw)
    except Invalid:
        return WidgetSettings()


def texts_for(settings: WidgetSettings, lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """The inbox's texts in ``lang``: (given by the admin for that language, still to translate from the
    default texts). Labels of pre-chat fields are in the second part as ``field.<key>``."""
    own = dict(settings.texts.get(lang, {}))
    default = settings.texts.get("default", {})
    missing = {k: v for k, v in default.items() if k not in own}
    for f in settings.prechat:
        if f.label is not None:
            missing[f"field.{f.key}"] = f.label
    if lang == settings.default_language:
        own.update(missing)
        return own, {}
    return own, missing


def team_faces(agents: Iterable[Agent], limit: int = MAX_FACES) -> list[dict[str, str | None]]:
    """The faces the widget's header shows: up to ``limit`` active agents, those with an avatar first, then
    the most recently assigned; each only ``{name, avatar_url}`` (public: no id, email or role)."""
    active = [a for a in agents if a.active]
    active.sort(key=lambda a: (a.avatar_url is None, -(a.last_assigned_at or 0), a.name, a.id))
    return [{"name": a.name, "avatar_url": a.avatar_url} for a in active[:limit]]


def public_view(
    settings: WidgetSettings,
    *,
    inbox_id: str,
    lang: str,
    texts: Mapping[str, str],
    now: float | None = None,
    faces: Sequence[Mapping[str, str | None]] = (),
) -> dict[str, Any]:
    """What ``GET /api/v1/widget/config`` answers: everything the widget shows, nothing secret. ``texts``
    are the inbox's texts in ``lang`` (given, translated or, failing both, the default ones); ``faces``
    from :func:`team_faces`."""
    prechat = []
    for f in settings.prechat:
        wire = f.to_wire()
        label = texts.get(f"field.{f.key}")
        if label is not None:
            wire["label"] = label
        prechat.append(wire)
    return {
        "inbox_id": inbox_id,
        "language": lang,
        "color": settings.color,
        "position": settings.position,
        "title": texts.get("title"),
        "subtitle": texts.get("subtitle"),
        "greeting": texts.get("greeting"),
        "timezone": settings.timezone,
        "hours": {d: [list(i) for i in v] for d, v in settings.hours.items()} if settings.hours else None,
        "open": settings.is_open(now),
        "prechat": prechat,
        "faces": [{"name": f.get("name"), "avatar_url": f.get("avatar_url")} for f in faces],
    }


def etag(view: Mapping[str, Any]) -> str:
    """A strong ETag of a public view (it changes with the settings and with ``open``)."""
    return '"' + hashlib.sha256(orjson.dumps(view, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32] + '"'


def validate_answers(fields: tuple[FormField, ...], raw: Any, *, partial: bool = False) -> dict[str, str]:
    """Pre-chat answers as the visitor sent them -> cleaned ``{key: value}``; Invalid names the first bad
    field as ``fields.<key>`` (required and empty, not an email, not a phone, not an option, unknown).
    ``partial``: only the form's keys among other fields, and none required (``conversation.start``)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise Invalid("fields maps pre-chat field keys to strings", data={"field": "fields"})
    by_key = {f.key: f for f in fields}
    if partial:
        raw = {k: v for k, v in raw.items() if k in by_key}
        fields = tuple(replace(f, required=False) for f in fields)
    for key in raw:
        if key not in by_key:
            raise Invalid(f"unknown pre-chat field {key!r}", data={"field": f"fields.{key}"})
    out: dict[str, str] = {}
    for f in fields:
        value = raw.get(f.key)
        if value is not None and not isinstance(value, str):
            raise Invalid(f"{f.key} must be a string", data={"field": f"fields.{f.key}"})
        value = (value or "").strip()
        if not value:
            if f.required:
                raise Invalid(f"{f.key} is required", data={"field": f"fields.{f.key}", "reason": "required"})
            continue
        if len(value) > MAX_ANSWER:
            raise Invalid(f"{f.key} is too long", data={"field": f"fields.{f.key}", "reason": "too_long"})
        if f.type == "email" and not EMAIL.match(value):
            raise Invalid(
                f"{f.key} is not an email address", data={"field": f"fields.{f.key}", "reason": "email"}
            )
        if f.type == "phone" and not PHONE.match(value):
            raise Invalid(
                f"{f.key} is not a phone number", data={"field": f"fields.{f.key}", "reason": "phone"}
            )
        if f.type == "dropdown" and value not in f.options:
            raise Invalid(
                f"{f.key} must be one of the options", data={"field": f"fields.{f.key}", "reason": "option"}
            )
        out[f.key] = value
    return out


def contact_values(fields: tuple[FormField, ...], answers: Mapping[str, str]) -> dict[str, str]:
    """The contact's name/email/phone from the answers (the first field of each type)."""
    out: dict[str, str] = {}
    for f in fields:
        if f.type in CONTACT_FIELDS and f.key in answers and f.type not in out:
            out[f.type] = answers[f.key]
    return out
