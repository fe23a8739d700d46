"""Background jobs: a sequence of commands run by a detached supervisor, recorded in a folder.

    JOB_DIR/job.json        state, steps (argv, resume argv, state, return code), env, pids
    JOB_DIR/log.txt         stdout + stderr of every step
    JOB_DIR/progress.jsonl  one JSON record per epoch (written by the trainer or parsed from the log)
    JOB_DIR/curves.png      the loss / Dice curves, redrawn as records arrive

The supervisor (``python -m TrainBridgeLib.jobs.runner supervise JOB_DIR``) starts in a new session,
so closing Slicer does not stop training; a new Slicer reattaches with ``Job(JOB_DIR)``.  It runs
the steps in order, keeps job.json current and records return codes (which a closed parent could
not).  ``cancel`` kills the whole process group (supervisor, trainer, data-loader workers);
``resume`` restarts the interrupted step with its resume argv (each backend gives its own) and
skips finished steps.

The spawning function is injectable (``spawn=``), as in SlicerNNUNet's process runner, so that a
caller can log or wrap what is started; by default it is ``subprocess.Popen``.
"""
from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic
from TrainBridgeLib.jobs.progress import read_progress

JOB_FILE, LOG_FILE, PROGRESS_FILE, CURVES_FILE = "job.json", "log.txt", "progress.jsonl", "curves.png"
FINAL_STATES = ("finished", "failed", "cancelled", "lost")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def _job_lock(job_dir, wait_s: float | None = None):
    """Hold JOB_DIR/job.lock: the parent (Job) and the supervisor both read, change and write
    job.json, and without the lock one could overwrite the other's change (a lost 'running').
    ``wait_s``: give up waiting after that long and go on unlocked (the SIGTERM handler, which
    may interrupt its own process while it holds the lock)."""
    fd = os.open(Path(job_dir) / "job.lock", os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while not locked:
            try:
                if os.name == "nt":
                    import msvcrt

                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                else:
                    import fcntl

                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError:
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        yield
    finally:
        if locked and os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.close(fd)  # (closing releases a flock)


def _update_job_file(job_dir, mutate, wait_s: float | None = None) -> dict:
    """Read job.json, ``mutate(record)``, write it back atomically, under the job lock."""
    path = Path(job_dir) / JOB_FILE
    with _job_lock(job_dir, wait_s):
        rec = json.loads(path.read_text(encoding="utf-8"))
        mutate(rec)
        write_json_atomic(path, rec)
    return rec


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def python_executable() -> str:
    """The Python to run jobs with: ``sys.executable``, or PythonSlicer inside the Slicer application."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("slicer"):  # SlicerApp-real: its Python is the PythonSlicer launcher
        import shutil

        found = shutil.which("PythonSlicer")
        return found or str(exe.parent / ("PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"))
    return sys.executable


def package_roots() -> list[str]:
    """Folders that hold the project's Lib packages (so ``python -m TrainBridgeLib...`` works anywhere)."""
    roots = []
    for name in ("TrainBridgeLib", "DicomTeamAnnotateLib", "ConsensusReviewLib"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        root = str(Path(mod.__file__).resolve().parent.parent)
        if root not in roots:
            roots.append(root)
    return roots


def job_environment(overrides: dict | None = None, threads: int | None = None, thread_vars=()) -> dict:
    """The job's environment overrides: thread counts, unbuffered output, PYTHONPATH with our packages.

    ``thread_vars``: a backend's own thread-count variables, set to ``threads`` with the BLAS ones.
    """
    env = {"PYTHONUNBUFFERED": "1"}
    if threads:
        env.update({k: str(threads) for k in (*THREAD_VARS, *thread_vars)})
    path = package_roots() + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env.update({k: str(v) for k, v in (overrides or {}).items()})
    return env


def default_spawn(argv: list, cwd: str, env: dict, log_path: str):
    """Start ``argv`` detached (new session / process group), output appended to ``log_path``."""
    log = open(log_path, "ab")
    kwargs = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "DETACHED_PROCESS", 0)
    else:
        kwargs["start_new_session"] = True
    try:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, close_fds=True, **kwargs)
    finally:
        log.close()


# ----- process helpers (no psutil: /proc on Linux, ps elsewhere, kernel32 on Windows) ---------------------
def _proc_stat(pid: int):
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return {"state": fields[0], "pgid": int(fields[2]), "start": fields[19]}


def process_start_token(pid: int) -> str | None:
    """An id of the process instance (its start time) to detect pid reuse; None where unknown."""
    st = _proc_stat(pid)
    return st["start"] if st else None


def pid_alive(pid: int | None, start_token: str | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, has the recorded start token."""
    if not pid:
        return False
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, int(pid))  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    if Path("/proc").is_dir() and Path("/proc/self/stat").exists():
        st = _proc_stat(pid)
        if st is None or st["state"] == "Z":
            return False
        return start_token is None or st["start"] == start_token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True,
                         encoding="utf-8", errors="replace").stdout.strip()
    return bool(out) and not out.startswith("Z")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group (Linux /proc; elsewhere ``ps``)."""
    if Path("/proc/self/stat").exists():
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                st = _proc_stat(int(p.name))
                if st and st["pgid"] == pgid and st["state"] != "Z":
                    out.append(int(p.name))
        return out
    res = subprocess.run(["ps", "-A", "-o", "pid=,pgid=,stat="], capture_output=True, encoding="utf-8", errors="replace").stdout
    return [int(r.split()[0]) for r in res.splitlines()
            if len(r.split()) >= 3 and int(r.split()[1]) == pgid and not r.split()[2].startswith("Z")]


def kill_tree(pid: int, pgid: int | None, grace_s: float = 10.0) -> None:
    """Terminate a process group (SIGTERM, then SIGKILL after ``grace_s``); taskkill /T on Windows."""
    if os.name == "nt":
        subprocess.run(["taskkill", "/PID", str(pid), "/T", "/F"], capture_output=True)
        return
    pgid = pgid or pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.1)
    if group_members(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ----- the job record ---------------------------------------------------------------------------------
def make_step(name: str, argv: list, *, resume_argv: list | None = None, progress: str | None = None) -> dict:
    """One step of a job: a command, its resume command, and the log follower that feeds progress.

    ``progress``: ``"package.module:Class"`` of a follower, built as ``Class(job_dir, num_epochs=...)``
    with an ``update()`` called while the step runs (a backend names its own; the runner imports it
    by that name in the supervisor and knows no backend).
    """
    return {"name": name, "argv": [str(a) for a in argv],
            "resume_argv": [str(a) for a in resume_argv] if resume_argv else None,
            "progress": progress, "state": "pending", "returncode": None, "started": None, "ended": None,
            "attempts": 0}


class Job:
    """A job folder: read its state, start, poll, wait, cancel, resume.  Reattaches from the folder."""

    def __init__(self, job_dir, spawn=None):
        self.dir = Path(job_dir).resolve()
        self.spawn = spawn or default_spawn
        self._proc = None  # the supervisor's Popen when started from this process
        if not (self.dir / JOB_FILE).exists():
            raise FileNotFoundError(f"{self.dir}: no {JOB_FILE} (not a job folder)")

    # ----- creation ------------------------------------------------------------------------------
    @classmethod
    def create(cls, job_dir, steps: list, *, backend: str, env: dict | None = None, params: dict | None = None,
               outputs: dict | None = None, spawn=None) -> Job:
        """Write a new job folder (refuses a folder that holds a running job)."""
        job_dir = Path(job_dir).resolve()
        if (job_dir / JOB_FILE).exists():
            old = cls(job_dir)
            if old.is_running():
                raise ValueError(f"{job_dir}: a job is already running there (pid {old.record.get('pid')})")
        job_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(job_dir / JOB_FILE, {
            "version": 1, "backend": backend, "created": _now(), "state": "created", "steps": steps,
            "env": dict(env or {}), "params": dict(params or {}), "outputs": dict(outputs or {}),
            "pid": None, "pgid": None, "pid_start": None, "cancel_requested": False, "host": os.uname().nodename
            if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", ""),
        })
        return cls(job_dir, spawn=spawn)

    @property
    def record(self) -> dict:
        """job.json as it is now on disk."""
        return json.loads((self.dir / JOB_FILE).read_text(encoding="utf-8"))

    def _update(self, **fields) -> dict:
        return _update_job_file(self.dir, lambda rec: rec.update(fields))

    # ----- control ---------------------------------------------------------------------------------
    def start(self) -> Job:
        """Start the detached supervisor; returns at once."""
        rec = self.record
        if self.is_running():
            raise ValueError(f"{self.dir}: already running (pid {rec['pid']})")
        env = dict(os.environ)
        env.update(rec.get("env", {}))
        argv = [python_executable(), "-m", "TrainBridgeLib.jobs.runner", "supervise", str(self.dir)]
        self._update(state="starting", cancel_requested=False, started=_now())
        proc = self.spawn(argv, str(self.dir), env, str(self.dir / LOG_FILE))
        self._proc = proc
        pgid = None
        if os.name != "nt":
            try:
                pgid = os.getpgid(proc.pid)
            except ProcessLookupError:
                pgid = proc.pid
        self._update(pid=proc.pid, pgid=pgid, pid_start=process_start_token(proc.pid))
        return self

    def is_running(self) -> bool:
        """True while the supervisor process lives."""
        if self._proc is not None and hasattr(self._proc, "poll"):
            return self._proc.poll() is None
        rec = self.record
        return pid_alive(rec.get("pid"), rec.get("pid_start"))

    def status(self) -> dict:
        """State (created/starting/running/finished/failed/cancelled/lost), current step, latest progress."""
        rec = self.record
        state = rec["state"]
        if state in ("starting", "running") and not self.is_running():
            time.sleep(0.2)  # the supervisor may be writing its final state right now
            rec = self.record
            state = rec["state"]
            if state in ("starting", "running"):
                state = "lost"  # killed without a chance to write (machine reboot, kill -9)
                rec = self._update(state="lost", ended=_now())
        steps = rec["steps"]
        current = next((s for s in steps if s["state"] in ("running", "failed", "cancelled")), None)
        records = self.progress()
        last = records[-1] if records else {}
        return {"state": state, "step": current["name"] if current else None,
                "steps": [{k: s[k] for k in ("name", "state", "returncode")} for s in steps],
                "backend": rec.get("backend"), "epoch": last.get("epoch"), "num_epochs": last.get("num_epochs",
                rec.get("params", {}).get("epochs")), "latest": last, "pid": rec.get("pid"),
                "job_dir": str(self.dir), "curves_png": str(self.dir / CURVES_FILE)
                if (self.dir / CURVES_FILE).exists() else None, "outputs": rec.get("outputs", {})}

    def progress(self) -> list[dict]:
        """The per-epoch records so far."""
        return read_progress(self.dir / PROGRESS_FILE)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the job's log."""
        path = self.dir / LOG_FILE
        if not path.exists():
            return ""
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 200 * lines))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-lines:])

    def wait(self, timeout: float | None = None, poll_s: float = 0.5) -> str:
        """Block until the job ends (or ``timeout``); returns the state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.status()["state"]
            if state in FINAL_STATES or state == "created":
                return state
            if deadline is not None and time.monotonic() > deadline:
                return state
            time.sleep(poll_s)

    def cancel(self, grace_s: float = 10.0) -> str:
        """Kill the supervisor and everything it started; the job becomes 'cancelled'."""
        rec = self._update(cancel_requested=True)
        if self.is_running() or (rec.get("pgid") and group_members(rec["pgid"])):
            kill_tree(rec["pid"], rec.get("pgid"), grace_s)
        if self._proc is not None and hasattr(self._proc, "wait"):
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        def mark(rec):
            if rec["state"] not in ("finished", "failed"):
                for s in rec["steps"]:
                    if s["state"] == "running":
                        s.update(state="cancelled", ended=_now())
                rec.update(state="cancelled", ended=_now())
        return _update_job_file(self.dir, mark)["state"]

    def resume(self) -> Job:
        """Restart an interrupted job: finished steps are skipped, the interrupted one resumes."""
        if self.is_running():
            raise ValueError(f"{self.dir}: still running")
        def reset(rec):
            if rec["state"] == "finished":
                raise ValueError(f"{self.dir}: already finished")
            for s in rec["steps"]:
                if s["state"] in ("running", "cancelled", "failed"):
                    s.update(state="pending", resume=True)
            rec.update(state="created", cancel_requested=False)
        _update_job_file(self.dir, reset)
        return self.start()


# ----- the supervisor (runs detached, in the job's process group) -----------------------------------------
def supervise(job_dir) -> int:
    """Run the job's pending steps in order, keep job.json current; returns the exit code."""
    job_dir = Path(job_dir).resolve()
    path = job_dir / JOB_FILE

    def update(mutate, wait_s=None):
        return _update_job_file(job_dir, mutate, wait_s)

    child = {"proc": None}

    def on_term(signum, frame):  # cancel: the group gets SIGTERM; record it, then exit
        if child["proc"] is not None and child["proc"].poll() is None:
            child["proc"].terminate()

        def mark(rec):
            for s in rec["steps"]:
                if s["state"] == "running":
                    s.update(state="cancelled", ended=_now())
            rec.update(state="cancelled", ended=_now())
        update(mark, wait_s=2.0)  # the signal may have interrupted this process's own update
        os._exit(143)

    if os.name != "nt":
        signal.signal(signal.SIGTERM, on_term)
    update(lambda r: r.update(state="running", pid=os.getpid(), pid_start=process_start_token(os.getpid())))
    rec = json.loads(path.read_text(encoding="utf-8"))
    for i, step in enumerate(rec["steps"]):
        if step["state"] == "done":
            continue
        argv = step["resume_argv"] if step.get("resume") and step.get("resume_argv") else step["argv"]
        def started(r, i=i, argv=argv):
            r["steps"][i].update(state="running", started=_now(), attempts=r["steps"][i].get("attempts", 0) + 1, ran=argv)

        update(started)
        with open(job_dir / LOG_FILE, "ab") as log:
            log.write(f"\n=== [{_now()}] step {step['name']}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, cwd=str(job_dir), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            child["proc"] = proc
            watcher = _progress_watcher(job_dir, step, rec)
            while proc.poll() is None:
                time.sleep(1.0)
                watcher()
            watcher()
        code = proc.returncode
        ok = code == 0
        def ended(r, i=i, ok=ok, code=code):
            r["steps"][i].update(state="done" if ok else "failed", returncode=code, ended=_now())

        update(ended)
        if not ok:
            update(lambda r, name=step["name"]: r.update(state="failed", ended=_now(), failed_step=name))
            return code or 1
    update(lambda r: r.update(state="finished", ended=_now()))
    return 0


def _progress_watcher(job_dir: Path, step: dict, rec: dict):
    """A callable that turns new log text into progress records (the step's log follower), or does nothing."""
    name = step.get("progress")
    if not name:
        return lambda: None
    module, _, attr = name.partition(":")
    follower_class = getattr(importlib.import_module(module), attr)
    follower = follower_class(job_dir, num_epochs=rec.get("params", {}).get("epochs"))
    return follower.update


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "supervise":
        print("usage: python -m TrainBridgeLib.jobs.runner supervise JOB_DIR", file=sys.stderr)
        return 2
    return supervise(argv[1])


if __name__ == "__main__":
    sys.exit(main())
