"""Pure checks: custom field values, field definitions, patches, email threading, CSAT links."""

from __future__ import annotations

from typing import Any

import pytest

from chatserver.errors import Conflict, Invalid
from chatserver.tickets import mail
from chatserver.tickets.csat import LinkProblem, sign_link, verify_link
from chatserver.tickets.model import (
    Change,
    FieldDef,
    FieldType,
    Priority,
    Ticket,
    field_def,
    field_values,
    plan_update,
)
from chatserver.tickets.status import TicketStatus

DEFS = [
    FieldDef("order", "Order number", FieldType.TEXT),
    FieldDef("amount", "Amount", FieldType.NUMBER),
    FieldDef("reason", "Reason", FieldType.DROPDOWN, ("broken", "late")),
    FieldDef("vip", "VIP", FieldType.CHECKBOX),
    FieldDef("due", "Due", FieldType.DATE),
]
T = Ticket("tk_1", 1001, "Broken lamp", TicketStatus.NEW, Priority.NORMAL, "ct_1", "cv_1", version=3)


def invalid_field(fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(Invalid) as exc:
        fn(*args, **kw)
    field: str = exc.value.data["field"]
    return field


def test_field_values_are_validated_and_normalized() -> None:
    got = field_values(
        DEFS, {"order": "A-1", "amount": 12.5, "reason": "late", "vip": True, "due": "2026-12-24"}
    )
    assert got == {"order": "A-1", "amount": 12.5, "reason": "late", "vip": True, "due": "2026-12-24"}
    assert field_values(DEFS, {"order": None}, current={"order": "A-1", "vip": False}) == {"vip": False}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"nope": 1}, "fields.nope"),
        ({"amount": "12"}, "fields.amount"),
        ({"amount": True}, "fields.amount"),
        ({"reason": "other"}, "fields.reason"),
        ({"vip": "yes"}, "fields.vip"),
        ({"due": "24.12.2026"}, "fields.due"),
        ({"due": 20261224}, "fields.due"),
        ({"order": 5}, "fields.order"),
    ],
)
def test_bad_field_values_name_the_field(values: dict[str, Any], field: str) -> None:
    assert invalid_field(field_values, DEFS, values) == field


def test_required_fields_must_be_set() -> None:
    defs = [FieldDef("order", "Order", FieldType.TEXT, required=True)]
    assert invalid_field(field_values, defs, {}) == "fields.order"
    assert invalid_field(field_values, defs, {"order": None}, current={"order": "x"}) == "fields.order"
    assert field_values(defs, {}, require=False) == {}  # an escalation fills them later


def test_field_definitions() -> None:
    d = field_def({"key": "reason", "label": "Reason", "type": "dropdown", "options": ["a", "b"]})
    assert d.options == ("a", "b") and d.to_wire()["options"] == ["a", "b"]
    for raw, field in [
        ({"key": "Bad Key", "label": "x", "type": "text"}, "key"),
        ({"key": "k", "label": "", "type": "text"}, "label"),
        ({"key": "k", "label": "x", "type": "color"}, "type"),
        ({"key": "k", "label": "x", "type": "dropdown"}, "options"),
        ({"key": "k", "label": "x", "type": "dropdown", "options": ["a", "a"]}, "options"),
        ({"key": "k", "label": "x", "type": "text", "options": ["a"]}, "options"),
        ({"key": "k", "label": "x", "type": "text", "required": "yes"}, "required"),
        ({"key": "k", "label": "x", "type": "text", "colour": 1}, "colour"),
    ]:
        assert invalid_field(field_def, raw) == field


def test_a_patch_plans_only_real_changes() -> None:
    changes = plan_update(
        T,
        {
            "version": 3,
            "subject": "Broken lamp",
            "priority": "high",
            "tags": ["VIP", "vip"],
            "status": "open",
        },
        DEFS,
    )
    assert changes == [
        Change("priority", "normal", "high"),
        Change("tags", [], ["vip"]),
        Change("status", "new", "open"),
    ]
    assert plan_update(T, {"fields": {"vip": True}}, DEFS) == [Change("fields.vip", None, True)]


def test_bad_patches() -> None:
    assert invalid_field(plan_update, T, {"colour": "red"}, DEFS) == "colour"
    assert invalid_field(plan_update, T, {"priority": "asap"}, DEFS) == "priority"
    assert invalid_field(plan_update, T, {"status": "done"}, DEFS) == "status"
    assert invalid_field(plan_update, T, {"subject": "  "}, DEFS) == "subject"
    assert invalid_field(plan_update, T, {"tags": ["a b"]}, DEFS) == "tags"
    assert invalid_field(plan_update, T, {"assignee_id": 5}, DEFS) == "assignee_id"
    with pytest.raises(Conflict) as exc:
        plan_update(T, {"status": "closed"}, DEFS)
    assert exc.value.data["allowed"] == ["on_hold", "open", "pending", "solved"]


def test_mails_thread_and_never_put_line_breaks_in_headers() -> None:
    t = Ticket(
        "tk_1",
        1001,
        "Lamp\r\nBcc: all@x",
        TicketStatus.OPEN,
        Priority.NORMAL,
        "ct",
        "cv",
        email_refs=("<a@x>", "<b@x>"),
    )
    d = mail.public_reply(t, "ann@example.com", "Ann", "Bob", "Fixed.", mail_from="Help <help@shop.test>")
    p = d.payload
    assert p["subject"] == "Re: [#1001] Lamp Bcc: all@x"
    assert p["in_reply_to"] == "<b@x>" and p["references"] == ["<a@x>", "<b@x>"]
    assert p["reply_to"] == "help+t1001@shop.test"
    assert d.idempotency_key == p["message_id"] and p["message_id"].endswith(".t1001@shop.test>")
    first = mail.received(
        Ticket("tk", 1002, "Hi", TicketStatus.NEW, Priority.LOW, "c", "v"), "a@x", None, mail_from="h@s"
    )
    assert first.payload["in_reply_to"] is None and first.payload["references"] == []
    assert mail.ticket_number_in("Re: [#1001] Lamp") == 1001
    assert mail.ticket_number_in("hello", "help+t1002@shop.test") == 1002
    assert mail.ticket_number_in("hello") is None


def test_csat_links() -> None:
    token = sign_link("secret", "tk_1", "n1", expires_at=2000)
    claims = verify_link("secret", token, now=1000)
    assert (claims.ticket_id, claims.nonce) == ("tk_1", "n1")
    for bad, now, kind in [
        (token, 2000, "expired"),
        (sign_link("other", "tk_1", "n1", 2000), 1000, "forged"),
        (token[:-2] + "xx", 1000, "forged"),
        ("garbage", 1000, "forged"),
        (token.split(".")[0] + "A." + token.split(".")[1], 1000, "forged"),
    ]:
        with pytest.raises(LinkProblem) as exc:
            verify_link("secret", bad, now=now)
        assert exc.value.kind == kind
