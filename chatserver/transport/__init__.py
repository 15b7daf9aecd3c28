"""The HTTP transport around the app: request body limits, read deadlines on connections, the uvicorn
configuration shared by every place that starts a server, and secret redaction in logs."""
