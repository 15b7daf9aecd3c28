"""The pure parts of the email channel, fed bytes and plain data."""

from __future__ import annotations

import io
import zipfile
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import HeaderParser

import pytest

from adapters.email.address import new_token, plus_address, split_plus
from adapters.email.headers import HeaderError, encode_header, format_address, safe_header_text
from adapters.email.html_text import html_to_text
from adapters.email.loops import AutoReplyRate, auto_reply_rate_ok, loop_decision
from adapters.email.outgoing import (
    MAX_REFERENCES,
    ThreadContext,
    capped_references,
    display_name,
    new_message_id,
    reply_payload,
    reply_subject,
)
from adapters.email.parse import Limits, parse_email
from adapters.email.thread import ThreadKind, TicketRef, decide_thread, thread_keys
from chatserver.outbox.email import build_message


def mail(body: str = "Hello", **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = headers.pop("From", "Ann Customer <ann@example.org>")
    m["To"] = headers.pop("To", "support@shop.example")
    m["Subject"] = headers.pop("Subject", "Where is my order?")
    m["Message-ID"] = headers.pop("Message_ID", "<m1@example.org>")
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


# -- parsing ----------------------------------------------------------------------------------------------


def test_plain_mail_headers_and_body() -> None:
    p = parse_email(
        mail("Hi,\nmy order 42 is late.", In_Reply_To="<a@x>", References="<z@x> <a@x>").as_bytes()
    )
    assert p.message_id == "m1@example.org"
    assert p.from_address == "ann@example.org" and p.from_name == "Ann Customer"
    assert p.to == ("support@shop.example",)
    assert p.in_reply_to == ("a@x",) and p.references == ("z@x", "a@x")
    assert p.display_text == "Hi,\nmy order 42 is late." and p.html is None and not p.problems


def test_html_only_mail_becomes_safe_text_and_keeps_the_original() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<p>Hello &amp; welcome</p><p>Click <a href='https://shop.example/o/1'>here</a><br>thanks</p>"
        "<img src=x onerror=alert(2)></body></html>"
    )
    m = mail()
    m.set_content(html, subtype="html")
    p = parse_email(m.as_bytes())
    assert p.html is not None and "<script>" in p.html
    assert p.text == "Hello & welcome\n\nClick here [https://shop.example/o/1]\nthanks"
    assert "<" not in p.display_text and "alert" not in p.display_text


def test_alternative_prefers_the_plain_part() -> None:
    m = mail("plain words")
    m.add_alternative("<p>html words</p>", subtype="html")
    p = parse_email(m.as_bytes())
    assert p.text == "plain words" and p.html == "<p>html words</p>\n"


def test_rfc2047_subject_and_name() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.de>\r\nTo: support@shop.example\r\n"
        b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= und =?utf-8?b?8J+YgA==?=\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n"
    )
    p = parse_email(raw)
    assert p.subject == "Grüße und 😀" and p.from_name == "Jürgen Müller"


@pytest.mark.parametrize(
    ("charset", "payload", "expected", "problem"),
    [
        ("iso-8859-1", "Grüße".encode("latin-1"), "Grüße", None),
        ("x-unknown-42", "Grüße".encode(), "Grüße", "unknown charset 'x-unknown-42'"),
        ("utf-8", "Grüße".encode("cp1252"), "Grüße", "text is not 'utf-8'"),  # a lying charset
        ("us-ascii", "naïve".encode(), "naïve", "text is not 'us-ascii'"),
    ],
)
def test_charsets_unknown_or_lying_fall_back_without_losing_text(
    charset: str, payload: bytes, expected: str, problem: str | None
) -> None:
    raw = (
        b"From: a@example.org\r\nTo: support@shop.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + payload + b"\r\n"
    )
    p = parse_email(raw)
    assert p.text == expected
    assert (problem in p.problems) if problem else not p.problems


def test_malformed_mime_still_gives_the_text_and_notes_the_defect() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"aGVsbG8gd29ybGQ=!!!\r\n"  # no closing boundary, junk after the base64
    )
    p = parse_email(raw)
    assert "hello world" in p.text
    assert any(pr.startswith("defects:") for pr in p.problems)


@pytest.mark.parametrize(
    "raw", [b"", b"\x00\xff\xfe garbage", b"no headers at all\n\njust text", b"\r\n" * 5]
)
def test_any_bytes_parse(raw: bytes) -> None:
    p = parse_email(raw)
    assert isinstance(p.text, str) and p.digest


def test_no_text_part_gives_empty_text_and_the_attachment() -> None:
    m = EmailMessage()
    m["From"] = "a@example.org"
    m["Subject"] = "scan"
    m.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="scan.pdf")
    p = parse_email(m.as_bytes())
    assert p.text == "" and [a.filename for a in p.attachments] == ["scan.pdf"]


def _with_attachments(n: int, size: int = 10, name: str = "f{i}.txt", ctype: str = "text/plain") -> bytes:
    m = mail("see attached")
    maintype, subtype = ctype.split("/")
    for i in range(n):
        m.add_attachment(b"x" * size, maintype=maintype, subtype=subtype, filename=name.format(i=i))
    return m.as_bytes()


def test_attachment_count_size_and_type_limits() -> None:
    p = parse_email(_with_attachments(500), Limits(max_attachments=50))
    assert len(p.attachments) == 50 and len(p.skipped) == 450
    assert {s.reason for s in p.skipped} == {"too_many"} and p.text == "see attached"
    big = parse_email(_with_attachments(1, size=2000), Limits(max_attachment_bytes=1000))
    assert big.attachments == () and big.skipped[0].reason == "too_large" and big.skipped[0].size == 2000
    exe = parse_email(_with_attachments(1, name="invoice.exe", ctype="application/octet-stream"))
    assert exe.attachments == () and exe.skipped[0].reason == "blocked_type"


def test_zip_bomb_is_flagged_never_unpacked() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (50 * 1024 * 1024))
    bomb = buf.getvalue()
    m = mail("see zip")
    m.add_attachment(bomb, maintype="application", subtype="zip", filename="bomb.zip")
    p = parse_email(m.as_bytes())
    (att,) = p.attachments
    assert att.warning == "zip_bomb" and att.data == bomb and len(bomb) < 200_000
    assert "attachment 'bomb.zip': zip_bomb" in p.problems


def test_attachment_filenames_cannot_escape() -> None:
    p = parse_email(_with_attachments(1, name="../../etc/passwd"))
    assert "/" not in p.attachments[0].filename and not p.attachments[0].filename.startswith(".")


def test_quoted_history_and_signature_fold_away_with_the_original_kept() -> None:
    body = (
        "Thanks, that worked.\n\n-- \nAnn\nACME Ltd\n\n"
        "On Mon, 1 Dec 2026 at 10:00, Support <support@shop.example> wrote:\n"
        "> Try turning it off\n> and on.\n"
    )
    p = parse_email(mail(body).as_bytes())
    assert p.display_text == "Thanks, that worked."
    assert p.signature == "Ann\nACME Ltd" and "Try turning it off" in p.quoted
    assert "Try turning it off" in p.text


def test_outlook_style_original_message_folds() -> None:
    body = (
        "New question\n\n-----Original Message-----\nFrom: Support\nSent: Monday\nTo: Ann\nSubject: Re\n\nOld"
    )
    p = parse_email(mail(body).as_bytes())
    assert p.display_text == "New question" and "Old" in p.quoted


def test_long_html_takes_the_fast_parser_with_the_same_result() -> None:
    small = "<p>Hi &amp; <b>bye</b><!-- secret comment --></p><script>x()</script><ul><li>a<li>b</ul>"
    assert html_to_text(small) == "Hi & bye\n\n- a\n- b"
    big = small * 2000  # over the threshold: lxml
    assert html_to_text(big) == "\n\n".join(["Hi & bye\n\n- a\n- b"] * 2000)
    assert "secret" not in html_to_text(big) and "x()" not in html_to_text(big)


def test_html_to_text_drops_all_markup() -> None:
    assert html_to_text("<b>a</b><ul><li>one<li>two</ul>") == "a\n\n- one\n- two"
    assert html_to_text("<blockquote>old</blockquote>new") == "> old\nnew"
    assert html_to_text("<a href='javascript:alert(1)'>x</a>") == "x"
    assert html_to_text("<p unclosed <<<>>> &bogus; &lt;tag&gt;") != ""


# -- threading ----------------------------------------------------------------------------------------------


def keys(
    rcpts: tuple[str, ...] = ("support@shop.example",),
    irt: tuple[str, ...] = (),
    refs: tuple[str, ...] = (),
    subject: str = "Hi",
):  # type: ignore[no-untyped-def]
    return thread_keys(
        recipients=rcpts,
        inbox_address="support@shop.example",
        in_reply_to=irt,
        references=refs,
        subject=subject,
    )


def test_thread_keys() -> None:
    k = keys(
        ("Support+ABCDEF1234@shop.example", "other+abcdef9999@elsewhere.example"),
        ("p@x",),
        ("a@x", "p@x"),
        "Re: [#1001] x [#7]",
    )
    assert k.tokens == ("abcdef1234",)
    assert k.message_ids == ("p@x", "a@x") and k.ticket_numbers == (1001, 7)


def test_thread_order_token_then_headers_then_ticket_then_new() -> None:
    k = keys(("support+tok0000001@shop.example",), ("m-a@x",), (), "[#1001]")
    everything = {
        "by_token": {"tok0000001": "cv_token"},
        "by_message_id": {"m-a@x": "cv_headers"},
        "by_ticket": {1001: TicketRef("cv_ticket", "ann@example.org")},
    }
    d = decide_thread(k, sender="ann@example.org", **everything)  # type: ignore[arg-type]
    assert (d.kind, d.conversation_id) == (ThreadKind.TOKEN, "cv_token")
    d = decide_thread(k, sender="ann@example.org", **{**everything, "by_token": {}})  # type: ignore[arg-type]
    assert (d.kind, d.conversation_id) == (ThreadKind.HEADERS, "cv_headers")
    d = decide_thread(
        k,
        sender="Ann@Example.org",
        by_token={},
        by_message_id={},
        by_ticket=everything["by_ticket"],  # type: ignore[arg-type]
    )
    assert (d.kind, d.conversation_id) == (ThreadKind.TICKET, "cv_ticket")
    d = decide_thread(k, sender="ann@example.org", by_token={}, by_message_id={}, by_ticket={})
    assert (d.kind, d.conversation_id) == (ThreadKind.NEW, None)


def test_ticket_number_from_another_sender_starts_a_new_conversation() -> None:
    d = decide_thread(
        keys(subject="Re: [#1001] refund"),
        sender="mallory@evil.example",
        by_token={},
        by_message_id={},
        by_ticket={1001: TicketRef("cv_1", "ann@example.org")},
    )
    assert d.kind is ThreadKind.NEW


def test_a_client_that_drops_in_reply_to_threads_by_token_or_references() -> None:
    by_token = {"tok0000001": "cv_1"}
    d = decide_thread(
        keys(("support+tok0000001@shop.example",)),
        sender="a@b",
        by_token=by_token,
        by_message_id={},
        by_ticket={},
    )
    assert d.conversation_id == "cv_1"
    d = decide_thread(
        keys(refs=("old@x", "parent@x")),
        sender="a@b",
        by_token={},
        by_message_id={"old@x": "cv_2"},
        by_ticket={},
    )
    assert (d.kind, d.conversation_id) == (ThreadKind.HEADERS, "cv_2")


def test_plus_addresses() -> None:
    t = new_token()
    assert split_plus(plus_address("Support@Shop.example", t)) == ("support@shop.example", t)
    assert split_plus("support+sales@shop.example") == ("support@shop.example", None)
    assert split_plus("support@shop.example") == ("support@shop.example", None)
    with pytest.raises(ValueError):
        plus_address("support@shop.example", "bad token!")


# -- loops --------------------------------------------------------------------------------------------------


def decide(headers: dict[str, str], **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "from_address": "ann@example.org",
        "message_id": "m1@example.org",
        "own_addresses": ["support@shop.example"],
        "own_message_ids": {"ours-1@shop.example"},
        "own_domains": ["mail.shop.example"],
    }
    return loop_decision(headers, **{**args, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "kw", "reason"),
    [
        ({"auto-submitted": "auto-replied"}, {}, "auto_submitted"),
        ({"auto-submitted": "auto-generated; owner-email=x@y"}, {}, "auto_submitted"),
        ({"precedence": "bulk"}, {}, "precedence"),
        ({"precedence": "List"}, {}, "precedence"),
        ({"precedence": "junk"}, {}, "precedence"),
        ({"x-auto-response-suppress": "All"}, {}, "auto_response_suppress"),
        ({"list-unsubscribe": "<mailto:u@x>"}, {}, "mailing_list"),
        ({"return-path": "<>"}, {}, "empty_return_path"),
        ({"x-loop": "support"}, {}, "x_loop"),
        ({}, {"message_id": "ours-1@shop.example"}, "own_message_id"),
        ({}, {"message_id": "abc@mail.shop.example"}, "own_message_id"),
    ],
)
def test_no_automatic_mail_in_answer_to(headers: dict[str, str], kw: dict[str, object], reason: str) -> None:
    d = decide(headers, **kw)
    assert not d.auto_reply_allowed and reason in d.reasons and not d.ignore


def test_ordinary_mail_may_get_automatic_mail_and_auto_submitted_no_too() -> None:
    assert decide({}).auto_reply_allowed
    assert decide(
        {"auto-submitted": "no", "precedence": "first-class", "return-path": "<a@b>"}
    ).auto_reply_allowed


def test_mail_from_our_own_address_is_ignored() -> None:
    for sender in ("support@shop.example", "SUPPORT+abcdef12345@shop.example"):
        d = decide({}, from_address=sender)
        assert d.ignore and not d.auto_reply_allowed and "from_own_address" in d.reasons


def test_auto_reply_rate_limit_per_sender() -> None:
    rate = AutoReplyRate(max_per_window=2, window_s=60)
    now = 1_000_000
    assert auto_reply_rate_ok([], now, rate)
    assert auto_reply_rate_ok([now - 1000], now, rate)
    assert not auto_reply_rate_ok([now - 1000, now - 2000], now, rate)
    assert auto_reply_rate_ok([now - 61_000, now - 2000], now, rate)


# -- header safety ------------------------------------------------------------------------------------------


def test_cr_lf_cannot_inject_headers() -> None:
    evil = "Refund\r\nBcc: victim@example.org\r\n\r\nbody"
    assert safe_header_text(evil) == "Refund Bcc: victim@example.org body"
    m = EmailMessage()
    m["Subject"] = encode_header(evil)
    m["From"] = format_address("Eve\nBcc: x@y", "support@shop.example")
    parsed = HeaderParser().parsestr(m.as_string())
    assert parsed.get_all("Bcc") is None and len(parsed.keys()) == 2


def test_non_ascii_is_rfc2047_encoded_and_round_trips() -> None:
    encoded = encode_header("Grüße 😀 " + "ä" * 300)
    assert encoded.isascii() and "=?utf-8?" in encoded
    assert str(make_header(decode_header(encoded))) == "Grüße 😀 " + "ä" * 300
    assert encode_header("plain") == "plain"


@pytest.mark.parametrize("bad", ["a@b\r\nBcc: c@d", "no-at-sign", "two@@x", "sp ace@x", "@x", "a@"])
def test_unusable_addresses_raise(bad: str) -> None:
    with pytest.raises(HeaderError):
        format_address("n", bad)


def test_an_encoded_from_name_cannot_change_the_address() -> None:
    limits = Limits(max_attachments=5, max_attachment_bytes=1000)
    for raw in (
        b"From: =?utf-8?q?Ann=0D=0ABcc=3A_victim=40evil=2Eexample?= <ann@example.org>\r\n\r\nhi",
        b"From: =?utf-8?q?x_<victim@evil.example>?= <ann@example.org>\r\n\r\nhi",
    ):
        parsed = parse_email(raw, limits)
        assert parsed.from_address == "ann@example.org"
        assert "\r" not in parsed.from_name and "\n" not in parsed.from_name


def test_ticket_plus_tags_thread_by_number() -> None:
    k = keys(("support+t1001@shop.example", "other+t7@elsewhere.example"), subject="Re: call")
    assert k.tokens == () and k.ticket_numbers == (1001,)
    k = keys(("support+t1001@shop.example",), subject="[#1001] and [#1002]")
    assert k.ticket_numbers == (1001, 1002)


# -- outgoing mail ----------------------------------------------------------------------------------------


def context(**kw: object) -> ThreadContext:
    values: dict[str, object] = {
        "inbox_address": "support@shop.example",
        "token": "abcdef0123456789abcd",
        "subject": "Where is my order?",
        "to_address": "ann@example.org",
        "to_name": "Ann",
        "chain": ("first@example.org",),
    }
    values.update(kw)
    return ThreadContext(**values)  # type: ignore[arg-type]


def test_a_reply_threads_under_the_last_mail_with_the_plus_address() -> None:
    ctx = context(chain=("first@example.org", "chat.1@shop.example", "answer@example.org"))
    mid = new_message_id(ctx.domain)
    assert mid.startswith("chat.") and mid.endswith("@shop.example")
    p = reply_payload(ctx, message_id=mid, text="Hi", from_name=display_name("Bob", "Support"))
    assert p["message_id"] == f"<{mid}>" and p["in_reply_to"] == "<answer@example.org>"
    assert p["references"] == ["<first@example.org>", "<chat.1@shop.example>", "<answer@example.org>"]
    assert p["reply_to"] == "support+abcdef0123456789abcd@shop.example"
    assert p["subject"] == "Re: Where is my order?" and p["from_name"] == "Bob - Support"
    assert p["from_address"] == "support@shop.example" and p["auto_submitted"] is None
    msg = build_message(p, mail_from="other@x.test")
    assert msg["From"] == "Bob - Support <support@shop.example>" and msg["Auto-Submitted"] is None
    assert msg["References"] == "<first@example.org> <chat.1@shop.example> <answer@example.org>"
    auto = build_message({**p, "auto_submitted": "auto-replied"}, mail_from="x@y")
    assert auto["Auto-Submitted"] == "auto-replied" and auto["X-Auto-Response-Suppress"] == "All"


def test_references_are_capped_keeping_the_first() -> None:
    chain = [f"m{i}@x" for i in range(50)]
    capped = capped_references(chain)
    assert len(capped) == MAX_REFERENCES and capped[0] == "m0@x" and capped[-1] == "m49@x"
    assert capped[1] == f"m{50 - MAX_REFERENCES + 1}@x"
    assert capped_references(["a@x", "a@x", "b@x"]) == ["a@x", "b@x"]
    assert reply_payload(context(chain=()), message_id="n@x", text="", from_name=None)["in_reply_to"] is None


@pytest.mark.parametrize(
    ("original", "number", "expected"),
    [
        ("Where is my order?", None, "Re: Where is my order?"),
        ("RE: Aw: Fwd: Where", None, "Re: Where"),
        ("Where", 1001, "Re: [#1001] Where"),
        ("Re: [#1001] Where", 1001, "Re: [#1001] Where"),
        ("[#7] Where", 1001, "Re: [#1001] Where"),
        ("Help\r\nBcc: victim@x", None, "Re: Help Bcc: victim@x"),
        ("", None, "Re: your message"),
    ],
)
def test_reply_subjects(original: str, number: int | None, expected: str) -> None:
    assert reply_subject(original, number) == expected


def test_display_names_cannot_pose_as_addresses_or_break_headers() -> None:
    assert display_name("Bob", "Support") == "Bob - Support"
    assert display_name("Support", "Support") == "Support"
    assert display_name(None, None) is None
    evil = display_name('ceo@bank.example\r\nBcc: x@y "<a@b>"', None)
    assert evil is not None and "@" not in evil and "\n" not in evil and "<" not in evil
    msg = build_message(
        {"to": "ann@example.org", "subject": "s", "text": "t", "message_id": "<m@x>",
         "from_address": "support@shop.example", "from_name": evil},
        mail_from="x@y",
    )  # fmt: skip
    assert msg["From"].addresses[0].addr_spec == "support@shop.example" and msg["Bcc"] is None
