"""Slicer's rule: Qt, MRML and ``slicer.util`` are used on the main thread only. This records breaches.

Two nets:
- the stand-ins (qt, ctk, slicer.app, the effect factory...) call ``check(what)`` on entry;
- ``watch_worker_threads()`` installs a profile function in every thread started afterwards that
  records a call into ``slicer/util.py`` (Slicer's own, from slicer-core) or into a method of a
  VTK/MRML object (classes from ``vtkmodules`` and ``slicer_core``).
A run fails when ``violations`` is not empty (the harness reports it).
"""
from __future__ import annotations

import os
import sys
import threading
import traceback

violations: list[str] = []
_MAIN = threading.main_thread()
_GUARDED_MODULE_PREFIXES = ("vtkmodules", "slicer_core")
_SLICER_UTIL = os.sep + os.path.join("slicer", "util.py")
_seen: set = set()


def _caller() -> str:
    """The first frame of the project's code below the breach (file:line function)."""
    stdlib = os.path.dirname(os.__file__)
    for frame in reversed(traceback.extract_stack()[:-2]):
        name = frame.filename
        if os.sep + "standins" + os.sep not in name and "site-packages" not in name and not name.startswith(stdlib):
            return f"{name}:{frame.lineno} {frame.name}"
    return "?"


def _record(what: str) -> None:
    where = _caller()
    key = (what, where)
    if key not in _seen:
        _seen.add(key)
        violations.append(f"{what} called on thread {threading.current_thread().name!r} from {where}")


def check(what: str) -> None:
    """Record ``what`` when it is used off the main thread."""
    if threading.current_thread() is not _MAIN:
        _record(what)


def _profile(frame, event, arg):
    if event == "call":
        if frame.f_code.co_filename.endswith(_SLICER_UTIL):
            _record(f"slicer.util.{frame.f_code.co_name}")
    elif event == "c_call":
        owner = getattr(arg, "__self__", None)
        if owner is not None and type(owner).__module__.startswith(_GUARDED_MODULE_PREFIXES):
            _record(f"{type(owner).__name__}.{getattr(arg, '__name__', '?')}")


def watch_worker_threads() -> None:
    """From now on, every new thread records slicer.util and VTK/MRML calls."""
    threading.setprofile(_profile)


def stop_watching() -> None:
    threading.setprofile(None)
    sys.setprofile(None)
