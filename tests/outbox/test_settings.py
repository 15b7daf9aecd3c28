from __future__ import annotations

import pytest

from chatserver.errors import ConfigError
from chatserver.settings import Settings


def test_outbox_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "CHATSERVER_SMTP_URL": "smtps://u:p@mail.test",
            "CHATSERVER_MAIL_FROM": "Help <help@shop.test>",
            "CHATSERVER_OUTBOX_RETRY_S": "2.5",
            "CHATSERVER_OUTBOX_MAX_ATTEMPTS": "4",
        }
    )
    assert (s.smtp_url, s.mail_from, s.outbox_retry_s, s.outbox_max_attempts) == (
        "smtps://u:p@mail.test",
        "Help <help@shop.test>",
        2.5,
        4,
    )
    assert s.workers_in_serve  # embedded: the workers run inside serve
    assert Settings.from_env({}).outbox_retry_s == 10.0 and Settings.from_env({}).smtp_url is None
    off = Settings.from_env({"CHATSERVER_WORKERS_IN_SERVE": "0"})
    assert not off.workers_in_serve


@pytest.mark.parametrize(
    "env",
    [
        {"CHATSERVER_SMTP_URL": "http://mail.test"},
        {"CHATSERVER_OUTBOX_RETRY_S": "0"},
        {"CHATSERVER_OUTBOX_MAX_ATTEMPTS": "0"},
        {"CHATSERVER_WORKERS_IN_SERVE": "maybe"},
    ],
)
def test_bad_outbox_settings_refuse_to_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)
