"""Training data out: cases (files or store), patient-level splits, nnU-Net v2 raw datasets and other formats."""
