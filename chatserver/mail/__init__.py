"""The email channel's I/O shells: inbound SMTP (aiosmtpd), IMAP polling (aioimaplib), the import of a
mail into a conversation, and the inbox settings. The pure parts are in adapters.email."""
