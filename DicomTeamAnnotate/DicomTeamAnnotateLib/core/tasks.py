"""One function on a worker thread, polled by a GUI that must stay responsive.

Slicer panels start a task and poll it from a ``qt.QTimer`` on the main thread, because Qt,
MRML and pip calls must stay there; the worker only computes (reading files, numpy, models).
Progress and cancellation are cooperative: the function receives the task, calls
``task.report(fraction, message)`` now and then, and ``report`` raises ``TaskCancelled`` once
the user has asked to cancel, so every progress report is also a place where work can stop.
Pure Python (threading): usable and tested outside Slicer.
"""
from __future__ import annotations

import threading
import time


class TaskCancelled(Exception):
    """The user cancelled the task; raised inside the worker at its next progress report."""


class BackgroundTask:
    """Run ``fn(task)`` on a daemon thread; read ``done``, ``progress``, ``result()`` from any thread."""

    def __init__(self, fn, name: str = "background task"):
        self._fn = fn
        self.name = name
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._fraction: float | None = None
        self._message = ""
        self._result = None
        self._error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def start(self) -> BackgroundTask:
        """Start the worker thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        try:
            self._result = self._fn(self)
        except BaseException as exc:  # handed to the main thread by result(); nothing is swallowed
            self._error = exc
        finally:
            self.finished_at = time.monotonic()
            self._finished.set()

    # ----- called by the worker -----------------------------------------------------------
    def report(self, fraction: float | None = None, message: str | None = None) -> None:
        """Record progress (fraction in [0, 1] or None when unknown); raise TaskCancelled if cancelled."""
        with self._lock:
            if fraction is not None:
                self._fraction = min(1.0, max(0.0, float(fraction)))
            if message is not None:
                self._message = str(message)
        if self._cancel.is_set():
            raise TaskCancelled(f"{self.name}: cancelled")

    # ----- called by the GUI ----------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the worker to stop at its next progress report."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        """True once the function returned or raised."""
        return self._finished.is_set()

    @property
    def progress(self) -> tuple:
        """(fraction or None, message) as last reported."""
        with self._lock:
            return self._fraction, self._message

    @property
    def elapsed(self) -> float:
        """Seconds since start (until finish)."""
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (or timeout); return ``done``."""
        return self._finished.wait(timeout)

    def result(self, timeout: float | None = None):
        """The function's return value; re-raise its exception (TaskCancelled when cancelled)."""
        if self._thread is None:
            raise RuntimeError(f"{self.name}: not started")
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{self.name}: still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result
