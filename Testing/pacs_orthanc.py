"""A real Orthanc for the PACS tests: started on 127.0.0.1 (free HTTP and DICOM ports) with the
DICOMweb plugin, a temporary storage folder, authentication on and one test user.

Orthanc comes from Debian (`apt-get install orthanc orthanc-dicomweb`).  Without it the tests
skip, except under CI (env CI set), where they fail: CI installs it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from store_support import free_ports

USER, PASSWORD = "pacs-tester", "s3cret-pacs"
PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")


def find_orthanc():
    """(binary, DICOMweb plugin path), or (None, reason)."""
    binary = os.environ.get("ORTHANC_BINARY") or shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    if not binary:
        return None, "the Orthanc binary is absent (apt-get install orthanc orthanc-dicomweb)"
    candidates = [os.environ.get("ORTHANC_DICOMWEB_PLUGIN", "")] + list(PLUGIN_CANDIDATES)
    candidates += sorted(str(p) for p in Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*"))
    plugin = next((c for c in candidates if c and Path(c).exists()), None)
    if not plugin:
        return None, "the Orthanc DICOMweb plugin is absent (apt-get install orthanc-dicomweb)"
    return (binary, plugin), None


def require_orthanc():
    """(binary, plugin); skip the test when absent, fail under CI."""
    found, reason = find_orthanc()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"required under CI: {reason}")
        pytest.skip(reason)
    return found




class OrthancServer:
    """One Orthanc process; ``stop()`` then ``start()`` again keeps its storage (same ports)."""

    def __init__(self, workdir: Path, binary: str, plugin: str):
        self.workdir = Path(workdir).resolve()
        self.binary, self.plugin = binary, plugin
        self.http_port, self.dicom_port = free_ports(2)  # distinct: both sockets are held together
        self.process = None
        self.log_path = self.workdir / "orthanc.log"
        self.config_path = self.workdir / "orthanc.json"
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "DicomTeamAnnotate-test", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": "DTATEST",
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [self.plugin], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StorageCompression": False, "SaveJobs": False, "ConcurrentJobs": 1,
        }
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        """The DICOMweb root."""
        return f"{self.base}/dicom-web"

    def start(self, timeout: float = 30.0) -> OrthancServer:
        import requests

        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            try:
                r = requests.get(f"{self.base}/system", auth=(USER, PASSWORD), timeout=2)
                if r.status_code == 200:
                    r = requests.get(f"{self.url}/studies", auth=(USER, PASSWORD), timeout=2)
                    if r.status_code == 200:
                        return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace", encoding="utf-8")[-n:]
        except OSError:
            return "(no log)"

    def client(self, user: str = USER, password: str = PASSWORD):
        from DicomTeamAnnotateLib.pacs.dicomweb import connect

        return connect(self.url, user, password, timeout=(5, 30))


def start_orthanc(workdir: Path) -> OrthancServer:
    binary, plugin = require_orthanc()
    return OrthancServer(workdir, binary, plugin).start()


def with_fresh_uids(src_dir: Path, dst_dir: Path, *, patient_id: str = "PACS-CT-001") -> list[Path]:
    """Copy a DICOM series giving it new Study/Series/SOP Instance UIDs (Orthanc refuses blank ones)."""
    import pydicom
    from pydicom.uid import generate_uid

    dst_dir.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    out = []
    for path in sorted(p for p in Path(src_dir).iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        sop = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.PatientID = patient_id
        target = dst_dir / f"{sop}.dcm"
        ds.save_as(target, enforce_file_format=True)
        out.append(target)
    return out


class CuttingProxy:
    """A TCP proxy in front of Orthanc that dies in the middle of a WADO-RS transfer: after
    ``cut_after`` bytes of WADO-RS responses it sends a FIN and closes both sockets, then refuses
    every connection.  A server that stops mid-transfer, at a deterministic byte."""

    # WADO-RS retrieve of a series or an instance (QIDO requests carry a query string)
    _WADO_GET = __import__("re").compile(rb"GET \S+/series/[0-9.]+(/instances/[0-9.]+)? HTTP")

    def __init__(self, target_port: int, cut_after: int):
        import threading

        self.target_port, self.cut_after = target_port, cut_after
        self.sent = 0
        self.cut = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def close(self) -> None:
        self.cut.set()
        try:
            self.listener.close()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            state = {"wado": False}
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, state), daemon=True).start()

    def _requests(self, client, upstream, state) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data or self.cut.is_set():
                _close(client, upstream)
                return
            if self._WADO_GET.search(data):
                state["wado"] = True
            try:
                upstream.sendall(data)
            except OSError:
                _close(client, upstream)
                return

    def _responses(self, upstream, client, state) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data or self.cut.is_set():
                _close(client, upstream)
                return
            if state["wado"]:
                with self._lock:
                    allowed = max(0, self.cut_after - self.sent)
                    self.sent += len(data)
                if len(data) >= allowed:
                    try:
                        client.sendall(data[:allowed])
                        client.shutdown(socket.SHUT_WR)  # a FIN after the partial body, so the client reads it
                        time.sleep(0.2)
                    except OSError:
                        pass
                    self.cut.set()
                    _close(client, upstream)
                    return
            try:
                client.sendall(data)
            except OSError:
                _close(client, upstream)
                return


def _close(*socks) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass
