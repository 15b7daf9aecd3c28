"""Files on messages: uploads from the widget and the console, and media from channels and email.

``model`` is pure (names, types, limits, signed links), ``store`` keeps the bytes on disk, ``service``
records and authorizes them; the HTTP routes are in ``chatserver/api/files.py``.
"""
