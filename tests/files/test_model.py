"""The pure rules for files: names, types, how each is served, signed links."""

from __future__ import annotations

import pytest

from chatserver.errors import Invalid
from chatserver.files.model import (
    DEFAULT_TYPES,
    Attachment,
    check_type,
    clean_name,
    disposition,
    link_valid,
    sign_link,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
        ("a\x00b\r\nc.txt", "a_b_c.txt"),
        ('quote"s <and> |pipes|.txt', "quote_s _and_ _pipes_.txt"),
        ("", "file"),
        (None, "file"),
        ("...", "file"),
        ("Résumé.pdf", "Résumé.pdf"),
    ],
)
def test_clean_name(raw: str | None, clean: str) -> None:
    assert clean_name(raw) == clean


def test_long_names_keep_their_extension() -> None:
    name = clean_name("x" * 500 + ".pdf")
    assert len(name) == 200 and name.endswith(".pdf")


def test_types() -> None:
    assert check_type("image/PNG; charset=binary", DEFAULT_TYPES) == "image/png"
    for bad in ("text/html", "image/svg+xml", "", None, "png", "a/b/c"):
        with pytest.raises(Invalid):
            check_type(bad, DEFAULT_TYPES)


def _att(name: str, ctype: str) -> Attachment:
    return Attachment("att_1", "cv_1", None, "0" * 64, name, ctype, 1, "contact", "ct_1", 0)


def test_images_inline_everything_else_a_download_with_a_safe_name() -> None:
    assert disposition(_att("a.png", "image/png")) == (
        "image/png",
        "inline; filename=\"a.png\"; filename*=UTF-8''a.png",
    )
    ctype, how = disposition(_att('Résumé "x".pdf', "application/pdf"))
    assert ctype == "application/pdf"  # its own type, but a download
    assert how == "attachment; filename=\"R?sum? _x_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22x%22.pdf"
    for hostile in ("text/html", "image/svg+xml", "application/javascript", "application/x-msdownload"):
        ctype, how = disposition(_att("x", hostile))  # a channel's media may be anything
        assert ctype == "application/octet-stream" and how.startswith("attachment;")


def test_signed_links() -> None:
    query = sign_link("s" * 32, "att_1", 2000)
    exp, sig = (part.split("=", 1)[1] for part in query.split("&"))
    assert link_valid("s" * 32, "att_1", exp, sig, 1999.0)
    assert link_valid("s" * 32, "att_1", exp, sig, 2000.0)
    assert not link_valid("s" * 32, "att_1", exp, sig, 2000.5)  # expired
    assert not link_valid("s" * 32, "att_2", exp, sig, 1000.0)  # another file
    assert not link_valid("t" * 32, "att_1", exp, sig, 1000.0)  # another key
    assert not link_valid("s" * 32, "att_1", "2001", sig, 1000.0)  # a longer life
    assert not link_valid("s" * 32, "att_1", None, sig, 1000.0)
    assert not link_valid("s" * 32, "att_1", "-5", sig, 1000.0)
    assert not link_valid("s" * 32, "att_1", exp, "", 1000.0)
