"""The Python packages a feature needs in Slicer, installed at its first use after the user agrees.

A ``Feature`` names what it is for (the user reads it) and its requirements (``>=`` bounds, never
pins). Before a feature's first use its panel calls ``Installer.ensure(feature)`` on the main
thread: nothing happens when all is installed; otherwise one question, then Slicer's
``slicer.packaging.pip_ensure`` (Slicer >= 5.12) installs them with Slicer's own packages HELD by a
constraints file (numpy, SimpleITK, pydicom, requests... and torch once installed: an install
that would replace one fails instead of breaking Slicer). torch itself comes only through the
PyTorch extension (PyTorchUtils picks the build that matches the GPU), never from pip here.
Only one installation runs at a time: a second click while one runs is told so.

``missing_requirements`` is pure Python (importlib.metadata + packaging) and runs anywhere.
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import tempfile
from dataclasses import dataclass

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.ui import SlicerUi

# Slicer 5.12 bundles these (SuperBuild/External_python-*.cmake): an install must not replace them.
SLICER_BUNDLED = ("numpy", "scipy", "SimpleITK", "pydicom", "pillow", "requests", "urllib3", "certifi", "idna",
                  "charset-normalizer", "chardet", "highdicom", "dicomweb-client", "dcmqi", "pyjpegls", "retrying",
                  "packaging", "pyparsing", "six", "typing_extensions", "setuptools", "pip", "wheel",
                  "cryptography", "cffi", "pycparser", "PyNaCl", "PyJWT", "wrapt", "Deprecated", "python-dateutil",
                  "couchdb", "GitPython", "gitdb", "smmap", "PyGithub")
# Installed through the PyTorch extension, then held like Slicer's own.
TORCH_PACKAGES = ("torch", "torchvision")
MINIMUM_SLICER = (5, 12)


@dataclass(frozen=True)
class Feature:
    """What a group of packages is for, and the packages (``>=`` requirement strings)."""

    purpose: str
    requirements: tuple = ()
    needs_torch: bool = False
    torch_requirement: str = ">=2.2"


# The core's features (the modules define theirs in their Lib's requirements.py)
SEGMENTATION_FILES = Feature(_("reading and writing segmentation files (.seg.nrrd)"), ("pynrrd>=1.0",))
DICOM_DECODERS = Feature(_("decoding compressed DICOM (JPEG 2000, JPEG, JPEG-LS lossless, RLE)"),
                         ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.3", "pylibjpeg-libjpeg>=2.1", "pylibjpeg-rle>=2.0"))
REPORTS = Feature(_("reports and pictures (matplotlib)"), ("matplotlib>=3.7",))
NIFTI_FILES = Feature(_("reading NIfTI files (.nii, .nii.gz)"), ("nibabel>=5.0",))
KEYRING = Feature(_("keeping passwords in the system keyring"), ("keyring>=24",))


def missing_requirements(requirements) -> list[str]:
    """The requirements not satisfied by what is installed (absent, or a version outside the bound)."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue  # not for this platform / Python
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            missing.append(text)
    return missing


def held_versions() -> dict[str, str]:
    """{package: installed version} of what an install must not replace (Slicer's and torch)."""
    held = {}
    for name in SLICER_BUNDLED + TORCH_PACKAGES:
        try:
            held[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return held


def write_constraints(folder: str | None = None) -> str:
    """A pip constraints file pinning ``held_versions()``; its path."""
    fd, path = tempfile.mkstemp(prefix="dicomteam-constraints-", suffix=".txt", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{name}=={version}\n" for name, version in sorted(held_versions().items())))
    return path


def slicer_version_problem(major: int, minor: int) -> str | None:
    """Why this Slicer cannot run the extension (None when it can)."""
    if (major, minor) >= MINIMUM_SLICER:
        return None
    return _("This module needs 3D Slicer {need} or newer (this is {have}): it installs the Python packages a "
             "feature needs at first use with Slicer's package manager (slicer.packaging.pip_ensure), which "
             "older Slicer versions do not have. Please install a current Slicer.").format(
        need=".".join(map(str, MINIMUM_SLICER)), have=f"{major}.{minor}")


def _slicer_version() -> tuple[int, int]:
    import slicer

    return int(slicer.app.majorVersion), int(slicer.app.minorVersion)


_installing = []  # one installation at a time, whichever module asked (a non-empty list: one runs)


class Installer:
    """Installs features in Slicer (main thread only); ``requester`` is the module's title."""

    def __init__(self, requester: str, ui):
        self.requester = requester
        self.ui = ui

    @staticmethod
    def missing(feature: Feature) -> list[str]:
        need = list(feature.requirements)
        if feature.needs_torch:
            need = [f"torch{feature.torch_requirement}", *need]
        return missing_requirements(need)

    def ensure(self, feature: Feature) -> bool:
        """True when the feature's packages are installed (installing them now if the user agrees)."""
        if not self.missing(feature):
            return True
        if _installing:
            self.ui.status(_("An installation of Python packages is running; try again when it has finished."))
            return False
        _installing.append(feature)
        try:
            return self._install(feature)
        finally:
            _installing.clear()

    def _install(self, feature: Feature) -> bool:
        if feature.needs_torch and missing_requirements([f"torch{feature.torch_requirement}"]):
            if not self._install_torch(feature):
                return False
        missing = missing_requirements(feature.requirements)
        if missing:
            import slicer

            try:
                import slicer.packaging
            except ImportError:  # Slicer < 5.12 (the panels check first; an effect or the console may not)
                self.ui.error(slicer_version_problem(*_slicer_version()) or _("This Slicer has no package manager "
                                                                              "(slicer.packaging)."))
                return False

            constraints = write_constraints()
            # In testing mode Slicer's confirmOkCancelDisplay answers `True == QMessageBox.Ok`, i.e. No:
            # a self-test installs without the question (the test is the user saying yes).
            testing = bool(slicer.app.testingEnabled())
            try:
                slicer.packaging.pip_ensure(missing, constraints=constraints, requester=self.requester,
                                            prompt_install=not testing, skip_in_testing=False)
            except RuntimeError as exc:  # the user declined, or pip is busy with another install
                self.ui.status(_("Not installed: {reason}").format(reason=exc))
                return False
            except subprocess.CalledProcessError:  # Slicer already showed "Package installation failed" and pip's log
                self.ui.status(_("Installing {packages} for {purpose} failed.").format(
                    packages=", ".join(missing), purpose=feature.purpose))
                return False
            finally:
                os.unlink(constraints)
        still = missing_requirements(feature.requirements)
        if still:
            self.ui.error(_("{purpose} needs {packages}, which are still not installed.").format(
                purpose=feature.purpose, packages=", ".join(still)))
            return False
        return True

    def _install_torch(self, feature: Feature) -> bool:
        try:
            import PyTorchUtils  # the "PyTorch" extension (EXTENSION_DEPENDS)
        except ImportError:
            self.ui.error(_("{purpose} needs PyTorch. Install the 'PyTorch' extension from the Extensions "
                            "Manager, restart Slicer, and try again.").format(purpose=feature.purpose))
            return False
        # PyTorchUtils installs the torch build that matches the GPU driver (light-the-torch); plain pip does not
        try:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                                  torchVersionRequirement=feature.torch_requirement)
        except (subprocess.CalledProcessError, ImportError, OSError) as exc:  # light-the-torch failed, or torch broke
            self.ui.error(_("Installing PyTorch for {purpose} through the PyTorch extension failed. Try again, or "
                            "install it in the PyTorch Utils module.").format(purpose=feature.purpose),
                          details=str(exc))
            return False
        if torch is None:
            self.ui.status(_("PyTorch was not installed."))
            return False
        return True


def require(feature: Feature, requester: str, ui=None) -> None:
    """For a module logic's methods, the Python console's entry points: the feature's packages, or a clear error.

    On the main thread (the console) missing packages are asked for and installed as the panels do; on a
    worker thread (a panel's task, whose panel ensured them before starting it) nothing may be asked, so
    the error names the packages and where to get them instead of a bare ModuleNotFoundError deep inside.
    """
    import threading

    missing = Installer.missing(feature)
    if not missing:
        return
    if threading.current_thread() is threading.main_thread():
        if ui is None:

            ui = SlicerUi()
        if Installer(requester, ui).ensure(feature):
            return
    raise RuntimeError(_("{purpose} needs the Python packages {packages}, which are not installed: use the "
                         "{requester} module's panel once, or call this from Slicer's Python console, to "
                         "install them.").format(purpose=feature.purpose, packages=", ".join(missing),
                                                 requester=requester))

