"""WebSocket endpoints and per-connection sessions (bounded queues, resume, heartbeats)."""
