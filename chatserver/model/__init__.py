"""Pure domain types, the conversation state machine, wire frames and bus events. No I/O."""
