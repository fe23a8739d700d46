"""ConsensusReview logic (Qt-free)."""
