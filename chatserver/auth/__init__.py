"""Authentication: agent passwords (argon2id), sessions with CSRF, API tokens, visitor tokens."""
