"""BackgroundTask (core/tasks.py): one function on a worker thread, polled by a GUI; cancel at the next report."""
from __future__ import annotations

import threading
import time

import pytest

from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled


def test_result_progress_and_elapsed():
    gate = threading.Event()

    def work(task):
        task.report(0.25, "reading")
        gate.wait(5)
        return 42

    task = BackgroundTask(work, name="t").start()
    deadline = time.monotonic() + 5
    while task.progress != (0.25, "reading") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert task.progress == (0.25, "reading")
    assert not task.done  # the GUI keeps polling while the worker waits
    gate.set()
    assert task.result(timeout=5) == 42
    assert task.done and task.elapsed > 0


def test_worker_exception_is_raised_by_result_with_its_traceback():
    def work(task):
        raise ValueError("/data/x.dcm: not a DICOM file")

    task = BackgroundTask(work).start()
    with pytest.raises(ValueError, match="not a DICOM file") as info:
        task.result(timeout=5)
    assert info.tb is not None and task.done


def test_cancel_stops_the_worker_at_its_next_report():
    started, steps = threading.Event(), []

    def work(task):
        started.set()
        for i in range(10_000):
            task.report(i / 10_000)
            steps.append(i)
            time.sleep(0.001)
        return "finished"

    task = BackgroundTask(work).start()
    assert started.wait(5)
    task.cancel()
    with pytest.raises(TaskCancelled):
        task.result(timeout=5)
    assert task.cancel_requested and len(steps) < 10_000


def test_fraction_is_clamped_and_misuse_is_refused():
    task = BackgroundTask(lambda t: t.report(7.0, "x"))
    with pytest.raises(RuntimeError, match="not started"):
        task.result()
    task.start()
    task.result(timeout=5)
    assert task.progress == (1.0, "x")
    with pytest.raises(RuntimeError, match="already started"):
        task.start()


def test_result_times_out_while_running():
    gate = threading.Event()
    task = BackgroundTask(lambda t: gate.wait(5)).start()
    with pytest.raises(TimeoutError):
        task.result(timeout=0.05)
    gate.set()
    task.result(timeout=5)
