"""Training backends: ``nnunet`` (nnU-Net v2's own commands) and ``monai`` (quick MONAI training)."""
