"""The shell around the channel adapters (adapters/): channel inboxes, applying inbound events to the
conversation service, and Telegram long polling. The adapters stay pure; this package does the I/O."""
