"""REST API (``/api/v1``), health endpoints and the OpenAPI document."""
