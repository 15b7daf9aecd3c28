"""The widget's per-inbox settings (colour, texts, business hours, pre-chat form) and signed visitor
identity: pure models here (model.py, identity.py), their storage in the inbox's ``config`` (store.py)."""
