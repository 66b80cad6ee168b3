"""Direct conversations: one-to-one and small groups, messages, read marks, live stream."""
