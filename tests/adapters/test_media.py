"""Inbound files: where each platform keeps them (``media_source`` against the local wire-compatible
servers, errors included), the bounded download (:class:`chatserver.channels.media.MediaFetcher`), and
the pure rules of outbound files per platform (images or documents, size limits)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters import meta, telegram, twilio
from adapters.base import Attachment, PlatformFiles
from chatserver.channels.media import FAILED, TOO_LARGE, Fetched, MediaFetcher, file_name, message_text
from chatserver.errors import Invalid, PermanentDeliveryError, TooLarge
from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms, graph_error_body, tg_error_body


@pytest.fixture
async def fake() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as f:
        yield f


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


def tg(fake: FakePlatforms) -> dict[str, str]:
    return {"bot_token": fakes.BOT_TOKEN, "secret_token": "s", "api_base": fake.url}


def wa(fake: FakePlatforms) -> dict[str, str]:
    return {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": "a",
        "verify_token": "v",
        "graph_base": fake.url,
    }


def sms(fake: FakePlatforms, base: str | None = None) -> dict[str, str]:
    return {
        "account_sid": fakes.TWILIO_SID,
        "auth_token": fakes.TWILIO_TOKEN,
        "from_number": "+15550001111",
        "api_base": base or fake.url,
    }


# -- where the bytes are ----------------------------------------------------------------------------------


async def test_telegram_getfile_and_its_refusals(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    fake.add_media("BQADdoc", b"%PDF-1.4 doc", "application/pdf")
    att = Attachment("file", "BQADdoc", "application/pdf", "contract.pdf", None)
    source = await telegram.CHANNEL.media_source(client, tg(fake), att)
    assert source.url == f"{fake.url}/file/bot{fakes.BOT_TOKEN}/documents/BQADdoc.bin"
    assert source.filename == "contract.pdf" and source.size == len(b"%PDF-1.4 doc")
    assert source.headers == {}  # the token is in the path, as Telegram wants it

    with pytest.raises(PermanentDeliveryError, match="invalid file_id"):
        await telegram.CHANNEL.media_source(client, tg(fake), Attachment("file", "nope"))
    fake.fail_next("getFile", 400, tg_error_body(400, "Bad Request: file is too big"))
    with pytest.raises(TooLarge, match="file is too big"):
        await telegram.CHANNEL.media_source(client, tg(fake), att)


async def test_whatsapp_media_id_lookup(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    fake.add_media("4490709327384033", b"\xff\xd8jpeg", "image/jpeg")
    source = await meta.WHATSAPP.media_source(client, wa(fake), Attachment("image", "4490709327384033"))
    assert source.url == f"{fake.url}/whatsapp-media/4490709327384033"
    assert source.headers == {"Authorization": f"Bearer {fakes.WA_TOKEN}"}
    assert source.mime_type == "image/jpeg" and source.size == 6

    with pytest.raises(PermanentDeliveryError, match="Graph API error 100"):
        await meta.WHATSAPP.media_source(client, wa(fake), Attachment("image", "404404"))
    fake.fail_next("graph_media", 500, graph_error_body(2, "Service temporarily unavailable"))
    with pytest.raises(Exception, match="Service temporarily unavailable") as caught:
        await meta.WHATSAPP.media_source(client, wa(fake), Attachment("image", "4490709327384033"))
    assert type(caught.value).__name__ == "TemporaryDeliveryError"
    with pytest.raises(PermanentDeliveryError, match="media id"):
        await meta.WHATSAPP.media_source(client, wa(fake), Attachment("image", "../me"))


async def test_twilio_credentials_go_only_to_the_accounts_api_host(
    fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    url = fake.twilio_media_url("SM1", "ME1")
    own = await twilio.CHANNEL.media_source(client, sms(fake), Attachment("image", url, "image/png"))
    assert own.headers["Authorization"].startswith("Basic ") and own.mime_type == "image/png"
    other = await twilio.CHANNEL.media_source(
        client, sms(fake, "https://api.twilio.com"), Attachment("image", url, "image/png")
    )
    assert other.headers == {}


async def test_messenger_links_are_fetched_as_they_are(
    fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    link = fake.media_url("photo1.jpg")
    source = await meta.MESSENGER.media_source(client, {}, Attachment("image", link))
    assert source.url == link and source.headers == {}


# -- the bounded download ---------------------------------------------------------------------------------


async def test_fetch_caps_the_size_and_the_time(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    fetcher = MediaFetcher(client, None, max_bytes=1000, timeout_s=30.0)
    fake.add_media("small.png", b"p" * 1000, "image/png")
    fake.add_media("big.bin", b"b" * 1001, "application/octet-stream")
    ok = await fetcher.fetch(meta.MESSENGER, {}, Attachment("image", fake.media_url("small.png")))
    assert ok.data == b"p" * 1000 and ok.content_type == "image/png" and ok.name == "image.png"
    big = await fetcher.fetch(meta.MESSENGER, {}, Attachment("file", fake.media_url("big.bin")))
    assert big.data is None and big.failure == TOO_LARGE
    declared = await fetcher.fetch(meta.MESSENGER, {}, Attachment("file", fake.media_url("x"), size=5000))
    assert declared.failure == TOO_LARGE
    missing = await fetcher.fetch(meta.MESSENGER, {}, Attachment("file", fake.media_url("gone")))
    assert missing.failure == FAILED and missing.detail == "HTTP 404"
    scheme = await fetcher.fetch(meta.MESSENGER, {}, Attachment("file", "file:///etc/passwd"))
    assert scheme.failure == FAILED and scheme.data is None

    # a platform that never answers: given up after the timeout, not stored
    release = fake.hold_call("download")
    impatient = MediaFetcher(client, None, max_bytes=1000, timeout_s=0.5)
    slow = await impatient.fetch(meta.MESSENGER, {}, Attachment("image", fake.media_url("small.png")))
    release.set()
    assert slow.failure == FAILED and slow.detail == "timed out"


# -- pure rules -------------------------------------------------------------------------------------------


def test_message_text_keeps_a_line_per_file_not_stored() -> None:
    photo = Attachment("image", "a")
    doc = Attachment("file", "b", filename="big.zip")
    failed = [Fetched(photo, failure=FAILED), Fetched(doc, "big.zip", failure=TOO_LARGE)]
    assert (
        message_text("hi", failed)
        == "hi\n[file not stored: download failed]\n[file not stored: too large] big.zip"
    )
    assert message_text("", []) == ""
    assert message_text("caption", []) == "caption"


def test_file_names_from_the_platform_or_the_type() -> None:
    assert file_name(Attachment("file", "x", filename="a.pdf"), None, None) == "a.pdf"
    assert file_name(Attachment("image", "x"), None, "image/jpeg") == "image.jpg"
    assert file_name(Attachment("audio", "x"), None, None) == "audio"


def test_platform_file_limits() -> None:
    mb = 1024 * 1024
    assert telegram.CHANNEL.file_limits.kinds([("image/png", mb), ("application/pdf", mb)]) == [
        "image",
        "file",
    ]
    # an image too big for sendPhoto goes as a document, which may be bigger
    assert telegram.CHANNEL.file_limits.kinds([("image/jpeg", 6 * mb)]) == ["file"]
    with pytest.raises(Invalid, match="limit of 20971520") as caught:
        telegram.CHANNEL.file_limits.kinds([("image/png", mb), ("application/zip", 21 * mb)])
    assert caught.value.data == {"field": "attachments.1", "limit": 20 * mb}
    # WhatsApp sends only JPEG and PNG as images; a GIF is a document
    assert meta.WHATSAPP.file_limits.kinds([("image/gif", mb)]) == ["file"]
    # MMS counts all media of a message together
    assert twilio.CHANNEL.file_limits.kinds([("image/png", 2 * mb), ("image/png", 2 * mb)]) == [
        "image",
        "image",
    ]
    with pytest.raises(Invalid, match="together"):
        twilio.CHANNEL.file_limits.kinds([("image/png", 3 * mb), ("image/png", 3 * mb)])
    with pytest.raises(Invalid, match="at most 2 files"):
        PlatformFiles(max_files=2).kinds([("image/png", 1)] * 3)
