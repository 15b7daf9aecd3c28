"""The email channel. Pure parts (no I/O): parse, html_text, fold, thread, loops, headers, address.
The I/O shells (inbound SMTP, IMAP polling) live in chatserver.email."""
