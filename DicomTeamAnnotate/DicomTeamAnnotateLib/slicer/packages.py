"""A module's Python requirements, installed in Slicer at first use after the user agrees.

Each module lists what it needs beyond what Slicer ships in ``Resources/requirements.txt``
(``>=`` bounds, never pins; never numpy, SimpleITK, pydicom, requests: those are Slicer's).
``missing_requirements`` is pure Python (importlib.metadata + packaging) and runs anywhere;
``ensure_requirements`` is the Slicer side: Slicer's ``pip_ensure`` (``slicer.pydeps``, earlier
``slicer.packaging``) asks the user and installs; older Slicer gets a confirmation box and
``slicer.util.pip_install``.
``ensure_torch`` gets torch through the PyTorch extension first (SamPrompt, TrainBridge), so that
the build matches the machine's GPU; their requirements.txt are installed after it.
"""
from __future__ import annotations

from pathlib import Path


def read_requirements(path) -> list[str]:
    """Requirement strings of a requirements.txt (comments, blank lines and pip options skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(line)
    return out


def missing_requirements(requirements) -> list[str]:
    """The requirements not satisfied by what is installed (absent, or a version outside the bound)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue  # not for this platform / Python
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            missing.append(text)
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            missing.append(text)
    return missing


def dependency_helper():
    """Slicer's module with ``pip_ensure`` and ``load_requirements``, or None (older Slicer).

    Current Slicer has it as ``slicer.pydeps``; the first releases that had ``pip_ensure``
    called the module ``slicer.packaging``.  A module of either name without those two
    functions does not count.
    """
    import importlib

    for name in ("slicer.pydeps", "slicer.packaging"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if callable(getattr(module, "pip_ensure", None)) and callable(getattr(module, "load_requirements", None)):
            return module
    return None


def ensure_requirements(path, requester: str) -> bool:
    """In Slicer: install what ``path`` lists and is missing, after the user confirms; False if declined."""
    import slicer
    from slicer.i18n import tr as _

    missing = missing_requirements(read_requirements(path))
    if not missing:
        return True
    deps = dependency_helper()
    if deps is not None:  # one dialog, progress, restart advice
        try:
            deps.pip_ensure(deps.load_requirements(str(path)), requester=requester)
        except RuntimeError:  # the user declined
            return False
        return True
    question = _("{requester} needs these Python packages, which are not installed yet:\n\n{packages}\n\n"
                 "Install them now? This can take a few minutes.").format(requester=requester,
                                                                          packages="\n".join(missing))
    if not slicer.util.confirmOkCancelDisplay(question):
        return False
    with slicer.util.WaitCursor():
        slicer.util.pip_install(missing)
    return True


def ensure_torch(requester: str, torch_requirement: str = ">=2.2") -> bool:
    """In Slicer: torch through the PyTorch extension (PyTorchUtils), after the user confirms; False if not."""
    import slicer
    from slicer.i18n import tr as _

    if not missing_requirements([f"torch{torch_requirement}"]):
        return True
    try:
        import PyTorchUtils  # the "PyTorch" extension, a dependency of this extension (EXTENSION_DEPENDS)
    except ImportError:
        slicer.util.errorDisplay(_("{requester} needs PyTorch. Install the 'PyTorch' extension from the Extensions "
                                   "Manager, restart Slicer, and try again.").format(requester=requester))
        return False
    # PyTorchUtils picks the build that matches the GPU driver (light-the-torch), which plain pip does not.
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                          torchVersionRequirement=torch_requirement)
    return torch is not None
