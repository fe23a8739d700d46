"""TrainBridge logic (Qt-free)."""
