"""The settings added for pending re-offers and first start: parsed, defaulted and refused clearly."""

from __future__ import annotations

import pytest

from chatserver.errors import ConfigError
from chatserver.settings import Settings


def test_requeue_window_and_auto_migrate_defaults_and_values() -> None:
    s = Settings.from_env({})
    assert s.requeue_window_s == 300.0 and s.auto_migrate is False
    s = Settings.from_env({"CHATSERVER_REQUEUE_WINDOW_S": "0", "CHATSERVER_AUTO_MIGRATE": "true"})
    assert s.requeue_window_s == 0.0 and s.auto_migrate is True
    for text in ("1", "yes", "on", "TRUE"):
        assert Settings.from_env({"CHATSERVER_AUTO_MIGRATE": text}).auto_migrate is True
    for text in ("0", "no", "off", "false"):
        assert Settings.from_env({"CHATSERVER_AUTO_MIGRATE": text}).auto_migrate is False


def test_the_database_pool_size() -> None:
    assert Settings.from_env({}).db_pool == 20
    assert Settings.from_env({"CHATSERVER_DB_POOL": "50"}).db_pool == 50


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CHATSERVER_REQUEUE_WINDOW_S": "-1"}, "CHATSERVER_REQUEUE_WINDOW_S"),
        ({"CHATSERVER_REQUEUE_WINDOW_S": "soon"}, "CHATSERVER_REQUEUE_WINDOW_S"),
        ({"CHATSERVER_AUTO_MIGRATE": "maybe"}, "CHATSERVER_AUTO_MIGRATE"),
        ({"CHATSERVER_DB_POOL": "1"}, "CHATSERVER_DB_POOL"),
        ({"CHATSERVER_DB_POOL": "many"}, "CHATSERVER_DB_POOL"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
