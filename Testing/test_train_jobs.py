"""TrainBridge background jobs with real subprocesses: start, reattach, cancel (whole tree), resume, failure."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from TrainBridgeLib.jobs.runner import Job, default_spawn, group_members, make_step, pid_alive

PY = sys.executable


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


TREE = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open("pids.tmp", "w").write(f"{os.getpid()} {child.pid}")
    os.replace("pids.tmp", "pids.txt")
    print("step b running", flush=True)
    time.sleep(300)
""")


def test_cancel_kills_the_process_tree_and_resume_continues(tmp_path):
    calls = []

    def spawn(argv, cwd, env, log_path):  # injected: records what is started, starts it for real
        calls.append(list(argv))
        return default_spawn(argv, cwd, env, log_path)

    steps = [make_step("a", [PY, "-c", "print('step a done')"]),
             make_step("b", [PY, "-c", TREE], resume_argv=[PY, "-c", "open('resumed.txt', 'w').write('ok')"])]
    job = Job.create(tmp_path / "job", steps, backend="test", spawn=spawn).start()
    assert calls and calls[0][1:4] == ["-m", "TrainBridgeLib.jobs.runner", "supervise"]
    pids_file = job.dir / "pids.txt"
    wait_for(pids_file.exists, what="step b to start its child")
    step_pid, grandchild = map(int, pids_file.read_text(encoding="utf-8").split())
    st = job.status()
    assert st["state"] == "running" and st["step"] == "b"
    assert [s["state"] for s in st["steps"]] == ["done", "running"]
    supervisor = job.record["pid"]
    assert all(pid_alive(p) for p in (supervisor, step_pid, grandchild))

    assert job.cancel(grace_s=5) == "cancelled"
    wait_for(lambda: not any(pid_alive(p) for p in (supervisor, step_pid, grandchild)), 15, "the tree to die")
    assert group_members(job.record["pgid"]) == []
    st = Job(job.dir).status()  # a fresh object, as a restarted Slicer would see it
    assert st["state"] == "cancelled" and [s["state"] for s in st["steps"]] == ["done", "cancelled"]

    job.resume()
    assert job.wait(timeout=60) == "finished"
    assert (job.dir / "resumed.txt").read_text(encoding="utf-8") == "ok"
    log = (job.dir / "log.txt").read_text(encoding="utf-8")
    assert log.splitlines().count("step a done") == 1  # the finished step was not run again
    assert [s["state"] for s in job.status()["steps"]] == ["done", "done"]
    assert len(calls) == 2


def test_jobs_command_cancels_resumes_and_follows_a_job(tmp_path, capsys):
    """`dicomteam jobs JOB_DIR --cancel / --resume / --wait / --json`, as a script would use them."""
    from DicomTeamAnnotateLib.cli.main import main

    steps = [make_step("b", [PY, "-c", TREE], resume_argv=[PY, "-c", "print('step b resumed', flush=True)"])]
    job = Job.create(tmp_path / "job", steps, backend="test").start()
    wait_for((job.dir / "pids.txt").exists, what="the step to start")
    assert main(["jobs", str(job.dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "running"
    assert main(["jobs", str(job.dir), "--cancel"]) == 0
    assert "cancelled: cancelled" in capsys.readouterr().out
    assert group_members(Job(job.dir).record["pgid"]) == []
    assert main(["jobs", str(job.dir), "--resume", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "resumed (pid" in out and "finished" in out
    assert main(["jobs", str(job.dir), "--log", "5"]) == 0 and "step b resumed" in capsys.readouterr().out
    assert main(["jobs", str(tmp_path / "nope")]) == 2


def test_job_survives_its_parent_and_is_reattached_from_the_folder(tmp_path):
    job_dir = tmp_path / "job"
    launcher = textwrap.dedent(f"""
        from TrainBridgeLib.jobs.runner import Job, make_step
        steps = [make_step("sleep", [{PY!r}, "-c", "import time; time.sleep(4); print('slept')"])]
        job = Job.create({str(job_dir)!r}, steps, backend="test").start()
        print(job.record["pid"])
    """)
    out = subprocess.run([PY, "-c", launcher], capture_output=True, encoding="utf-8", errors="replace", timeout=60, check=True)
    supervisor = int(out.stdout.split()[-1])
    # the launching process has exited; the job still runs and is found again from its folder
    job = Job(job_dir)
    assert job.is_running() and job.record["pid"] == supervisor
    assert job.status()["state"] in ("starting", "running")
    assert job.wait(timeout=60) == "finished"
    assert "slept" in job.log_tail(5)
    assert job.status()["steps"][0]["returncode"] == 0


def test_failed_step_stops_the_job_with_its_exit_code(tmp_path):
    steps = [make_step("bad", [PY, "-c", "import sys; print('boom'); sys.exit(3)"]),
             make_step("never", [PY, "-c", "open('ran.txt', 'w')"])]
    job = Job.create(tmp_path / "job", steps, backend="test").start()
    assert job.wait(timeout=60) == "failed"
    st = job.status()
    assert st["steps"] == [{"name": "bad", "state": "failed", "returncode": 3},
                           {"name": "never", "state": "pending", "returncode": None}]
    assert not (job.dir / "ran.txt").exists() and "boom" in job.log_tail()
    running = Job.create(tmp_path / "job2", [make_step("s", [PY, "-c", "import time; time.sleep(30)"])],
                         backend="test").start()
    try:
        with pytest.raises(ValueError, match="already running"):
            Job.create(tmp_path / "job2", [], backend="test")  # never overwrite a running job's folder
    finally:
        running.cancel(grace_s=2)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_supervisor_killed_hard_is_reported_lost(tmp_path):
    steps = [make_step("sleep", [PY, "-c", "import time; time.sleep(120)"])]
    job = Job.create(tmp_path / "job", steps, backend="test").start()
    wait_for(lambda: job.record["state"] == "running", what="the supervisor to run")
    pid, pgid = job.record["pid"], job.record["pgid"]
    os.kill(pid, signal.SIGKILL)
    try:
        wait_for(lambda: Job(job.dir).status()["state"] == "lost", 20, "state lost")
    finally:
        os.killpg(pgid, signal.SIGKILL)  # the orphaned step


def _bump_many(job_dir: str, key: str, n: int) -> None:
    from TrainBridgeLib.jobs.runner import _update_job_file

    for _ in range(n):
        _update_job_file(job_dir, lambda rec: rec.update({key: rec.get(key, 0) + 1, "total": rec.get("total", 0) + 1}))


def test_parent_and_supervisor_never_overwrite_each_others_job_record(tmp_path):
    """Job (in Slicer) and its supervisor both rewrite job.json; under the job lock no change is lost
    (before it, the parent's pid write could undo the supervisor's state='running')."""
    import multiprocessing

    (tmp_path / "job.json").write_text(json.dumps({"state": "created", "steps": []}), encoding="utf-8")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump_many, args=(str(tmp_path), f"p{i}", 150)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    rec = json.loads((tmp_path / "job.json").read_text(encoding="utf-8"))
    assert (rec["p0"], rec["p1"], rec["total"]) == (150, 150, 300)
