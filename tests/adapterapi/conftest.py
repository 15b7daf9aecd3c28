from tests.e2e.conftest import http, no_secret_in_server_logs, seeded, server, server_overrides, sqlite_url

__all__ = ["http", "no_secret_in_server_logs", "seeded", "server", "server_overrides", "sqlite_url"]
