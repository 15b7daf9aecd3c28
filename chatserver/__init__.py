"""chatserver: an omnichannel live-chat and messaging server.

Public entry points: :func:`chatserver.app.create_app` and :class:`chatserver.settings.Settings`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
