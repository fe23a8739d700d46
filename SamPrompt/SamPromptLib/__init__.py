"""SamPrompt logic (Qt-free)."""
