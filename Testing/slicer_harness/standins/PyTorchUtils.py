"""A stand-in for the PyTorch extension's ``PyTorchUtils`` module (github fepegar/SlicerPyTorch).

``PyTorchUtilsLogic().torchInstalled()`` and ``installTorch(askConfirmation=..., forceComputationBackend=None,
torchVersionRequirement=None, torchvisionVersionRequirement=None)`` (returns the torch module, or
None when declined or failed) as the extension has them. The extension installs a torch build
with light-the-torch; here "installing" makes the torch the project's test environment already has
visible to this run (a multi-GB download per test run would add nothing to what is tested: which
code asks for torch, when, and what it does after). Every call is recorded in ``record``.
"""
import importlib
import importlib.metadata
import os
import subprocess
import sys
import sysconfig

import slicer
import threadguard

record = []


class PyTorchUtilsLogic:
    @staticmethod
    def torchInstalled():
        try:
            importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return False
        return True

    def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                     torchvisionVersionRequirement=None):
        threadguard.check("PyTorchUtils.installTorch")
        record.append({"call": "installTorch", "askConfirmation": askConfirmation,
                       "torch": torchVersionRequirement, "torchvision": torchvisionVersionRequirement})
        if askConfirmation and not slicer.app.commandOptions().testingEnabled:
            if not slicer.util.confirmOkCancelDisplay("This module requires PyTorch. Install it?"):
                return None
        if os.environ.get("HARNESS_TORCH_FAIL"):  # light-the-torch failing (no network, a full disk): as the
            raise subprocess.CalledProcessError(1, "light_the_torch")  # extension's _executePythonModule raises
        links = os.environ.get("HARNESS_TORCH_SITE")
        if not links:
            return None
        # installed = in this environment's site-packages for every later process too (pip sees it)
        site = sysconfig.get_paths()["purelib"]
        with open(os.path.join(site, "_harness_torch.pth"), "w", encoding="utf-8") as fh:
            fh.write(links + "\n")
        if links not in sys.path:
            sys.path.append(links)
        importlib.invalidate_caches()
        import torch

        return torch
