from tests.e2e.conftest import http, seeded, server, server_overrides, sqlite_url

__all__ = ["http", "seeded", "server", "server_overrides", "sqlite_url"]
