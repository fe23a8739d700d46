"""The MONAI architectures offered for quick training, built from a JSON-able config.

The config (``arch``, ``in_channels``, ``out_channels``, ``kwargs``) is stored in every
checkpoint and in the exported model's manifest, so any of them can rebuild the same network.
"""
from __future__ import annotations

ARCHITECTURES = ("segresnet", "unet", "swinunetr", "vnet")

# Each spatial size of a patch must be divisible by this (the network's total down-sampling).
DIVISOR = {"segresnet": 8, "unet": 16, "swinunetr": 32, "vnet": 16}
# Smallest patch side: SwinUNETR's bottleneck must keep more than one voxel (instance norm in training).
MIN_PATCH = {"segresnet": 8, "unet": 16, "swinunetr": 64, "vnet": 16}

# Small defaults: these runs are trials on a workstation, not state-of-the-art training.
DEFAULT_KWARGS = {
    "segresnet": {"init_filters": 16, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout_prob": 0.0},
    "unet": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2, "norm": "instance"},
    "swinunetr": {"feature_size": 12, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24]},
    "vnet": {"dropout_prob_down": 0.0, "dropout_prob_up": [0.0, 0.0]},
}

# AdamW learning rates for short runs: the convolutional nets converge several times faster at 1e-2
# than at 2e-3 on the phantoms (loss 1.23 vs 2.31 after 64 steps); transformers need a gentler one.
DEFAULT_LR = {"segresnet": 1e-2, "unet": 1e-2, "vnet": 1e-2, "swinunetr": 2e-4}


def model_config(arch: str, in_channels: int, out_channels: int, **overrides) -> dict:
    """A network description: architecture name, channel counts and keyword arguments."""
    arch = arch.lower()
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (choose one of {', '.join(ARCHITECTURES)})")
    if arch == "vnet" and 16 % in_channels:
        raise ValueError(f"VNet needs a channel count dividing 16, got {in_channels}")
    kwargs = dict(DEFAULT_KWARGS[arch])
    kwargs.update(overrides)
    return {"arch": arch, "in_channels": int(in_channels), "out_channels": int(out_channels), "kwargs": kwargs}


def build_network(config: dict):
    """The torch module described by ``config`` (3-D)."""
    from monai.networks import nets

    arch, kw = config["arch"], dict(config["kwargs"])
    cin, cout = config["in_channels"], config["out_channels"]
    if arch == "segresnet":
        return nets.SegResNet(spatial_dims=3, in_channels=cin, out_channels=cout, **kw)
    if arch == "unet":
        return nets.UNet(spatial_dims=3, in_channels=cin, out_channels=cout, **kw)
    if arch == "swinunetr":
        return nets.SwinUNETR(spatial_dims=3, in_channels=cin, out_channels=cout, **kw)
    if arch == "vnet":
        return nets.VNet(spatial_dims=3, in_channels=cin, out_channels=cout, **kw)
    raise ValueError(f"unknown architecture {arch!r}")


def default_patch(arch: str, median_shape, target: int = 96) -> list[int]:
    """Patch size (K, J, I): the median image size capped at ``target``, rounded up to the divisor."""
    d = DIVISOR[arch]
    out = []
    for n in median_shape:
        n = min(int(n), max(target, MIN_PATCH[arch]))
        out.append(max(MIN_PATCH[arch], -(-n // d) * d))
    return out
