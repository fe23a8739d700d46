"""A stand-in for ``slicer.packaging`` (Base/Python/slicer/packaging.py in Slicer 5.12), installing for real.

Kept from Slicer 5.12 (signatures and order of events):
- ``pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True,
  prompt_restart=True, requester=None, skip_in_testing=True, show_progress=True)``: nothing missing ->
  None; in testing mode with ``skip_in_testing`` -> installs NOTHING and returns None; otherwise asks
  ``slicer.util.confirmOkCancelDisplay`` (True in testing mode) and raises
  ``RuntimeError("User declined package installation")`` on No; then ``pip_install``; a pip failure
  raises ``subprocess.CalledProcessError``;
- ``pip_install(requirements, constraints=None, ..., blocking=True)``: ``python -m pip install`` into
  this interpreter's environment (here: the run's throwaway environment, never the base);
  a non-blocking call while another runs raises RuntimeError;
- ``pip_check(requirement)``: installed and satisfying (importlib.metadata).
Every prompt and install is recorded in ``record`` for the tests.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import subprocess
import sys
from pathlib import Path

import slicer
import threadguard
from packaging.requirements import Requirement

record: list[dict] = []
_in_progress = False


def load_requirements(path) -> list[str]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(line)
    return out


def _to_requirements(requirements) -> list[Requirement]:
    if isinstance(requirements, (str, Requirement)):
        requirements = [requirements]
    out = []
    for r in requirements:
        if isinstance(r, Requirement):
            out.append(r)
            continue
        try:
            out.append(Requirement(r))
        except Exception:
            out += [Requirement(x) for x in str(r).split()]
    return out


def pip_check(requirement) -> bool:
    req = requirement if isinstance(requirement, Requirement) else Requirement(str(requirement))
    if req.marker is not None and not req.marker.evaluate():
        return True
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return not req.specifier or req.specifier.contains(version, prereleases=True)


def isPipInstallInProgress() -> bool:
    return _in_progress


def pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
               requester=None, skip_in_testing=True, show_progress=True):
    threadguard.check("slicer.packaging.pip_ensure")
    missing = [r for r in _to_requirements(requirements) if not pip_check(r)]
    entry = {"call": "pip_ensure", "requester": requester, "missing": [str(r) for r in missing],
             "constraints": str(constraints) if constraints else None, "skip_in_testing": skip_in_testing}
    record.append(entry)
    if not missing:
        return None
    if skip_in_testing and slicer.app.testingEnabled():
        logging.info(f"Testing mode is enabled: skipping pip_ensure for {[str(r) for r in missing]}")
        entry["skipped_testing"] = True
        return None
    if prompt_install:
        entry["prompted"] = True
        if not slicer.util.confirmOkCancelDisplay(
                f"{requester or 'A module'} requires these packages: {', '.join(map(str, missing))}. Install?"):
            raise RuntimeError("User declined package installation")
    pip_install([str(r) for r in missing], constraints=constraints, skip_packages=skip_packages, requester=requester)
    return None


def pip_install(requirements, constraints=None, no_deps_requirements=None, skip_packages=None, blocking=True,
                show_progress=True, requester=None, parent=None, logCallback=None, completedCallback=None):
    global _in_progress
    if not blocking and _in_progress:
        raise RuntimeError("A non-blocking pip_install is already in progress. Wait for it to complete or use "
                           "blocking=True.")
    reqs = requirements.split() if isinstance(requirements, str) else list(requirements)
    args = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", *reqs]
    if constraints:
        args += ["-c", str(constraints)]
    record.append({"call": "pip_install", "requirements": reqs, "constraints": str(constraints) if constraints else None,
                   "requester": requester})
    _in_progress = True
    try:
        proc = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace")
    finally:
        _in_progress = False
    if proc.returncode != 0:
        record[-1]["error"] = proc.stderr[-2000:]
        if blocking and show_progress:  # Slicer's progress dialog path: it shows the failure and pip's log itself
            slicer.util.errorDisplay("Package installation failed.", detailedText=proc.stdout + proc.stderr)
            raise subprocess.CalledProcessError(proc.returncode, "pip install")
        raise subprocess.CalledProcessError(proc.returncode, "pip install", proc.stdout, proc.stderr)
    importlib.invalidate_caches()
    if completedCallback:
        completedCallback(0)
    return None
