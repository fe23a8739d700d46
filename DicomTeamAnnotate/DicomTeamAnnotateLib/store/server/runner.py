"""Running the server: ``serve`` (`dicomteam serve`), ``BackgroundServer`` (a thread, for tests and
demos) and ``app_from_env`` (the factory uvicorn's worker processes call).

Both run uvicorn with the server's transport guards (transport.py: bounded, timed request
heads), a keep-alive timeout and a cap on concurrent connections.
"""
from __future__ import annotations

import argparse
import json
import os

from DicomTeamAnnotateLib.store.server.app import create_app
from DicomTeamAnnotateLib.store.server.context import Limits
from DicomTeamAnnotateLib.store.server.transport import protocol_setting
from DicomTeamAnnotateLib.store.service import read_project_file
from DicomTeamAnnotateLib.store.sqlindex import SqlIndex

MAX_CONNECTIONS = 2000  # beyond this uvicorn answers 503 at once


def uvicorn_settings(limits: Limits) -> dict:
    """uvicorn keyword arguments that bound slow and large requests."""
    return {"http": protocol_setting(), "timeout_keep_alive": limits.keep_alive_s,
            "h11_max_incomplete_event_size": limits.max_header_bytes, "limit_concurrency": MAX_CONNECTIONS}


def app_from_env():
    """App factory for ``uvicorn --factory`` and multi-worker runs (DICOMTEAM_PROJECT, DICOMTEAM_DB,
    DICOMTEAM_SERVE_OPTIONS: the serve options as JSON, for the plugins)."""
    project = os.environ.get("DICOMTEAM_PROJECT")
    if not project:
        raise RuntimeError("set DICOMTEAM_PROJECT to the project folder")
    options = argparse.Namespace(**json.loads(os.environ.get("DICOMTEAM_SERVE_OPTIONS") or "{}"))
    return create_app(project, os.environ.get("DICOMTEAM_DB") or None, options=options)


def serve(project_dir, host: str = "127.0.0.1", port: int = 8765, db_url: str | None = None, *,
          workers: int = 1, log_level: str = "info", options=None, plugins: dict | None = None) -> None:
    """Run the server (blocks).  ``workers`` > 1 starts several processes on the same port.

    ``options``: the parsed `dicomteam serve` options (handed to the server plugins).
    """
    import uvicorn

    read_project_file(project_dir)  # fail early, with a clear message, on a folder that is no project
    limits = Limits()
    if workers > 1:  # worker processes import the app and the protocol (default Limits) by name
        SqlIndex(project_dir, db_url).close()  # create the tables once, before the workers race to
        os.environ["DICOMTEAM_PROJECT"] = str(project_dir)
        os.environ["DICOMTEAM_DB"] = db_url or ""
        os.environ["DICOMTEAM_SERVE_OPTIONS"] = json.dumps(_plain(options))
        uvicorn.run("DicomTeamAnnotateLib.store.server:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, **uvicorn_settings(limits))
        return
    config = uvicorn.Config(create_app(project_dir, db_url, options=options, plugins=plugins, limits=limits),
                            host=host, port=port, log_level=log_level, **uvicorn_settings(limits))
    config.dicomteam_limits = limits
    uvicorn.Server(config).run()


def _plain(options) -> dict:
    """The JSON-safe part of the serve options (what worker processes can be handed)."""
    if options is None:
        return {}
    out = {}
    for key, value in vars(options).items():
        if key == "func":
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = str(value)
        out[key] = value
    return out


class BackgroundServer:
    """The server in a thread of this process on 127.0.0.1 (demos, benchmarks, tests); ``url``, ``stop()``."""

    def __init__(self, project_dir, db_url: str | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 plugins: dict | None = None, options=None, limits: Limits | None = None):
        import socket
        import threading
        import time

        import uvicorn

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        limits = limits or Limits()
        self.app = create_app(project_dir, db_url, plugins=plugins, options=options, limits=limits)
        config = uvicorn.Config(self.app, log_level="warning", **uvicorn_settings(limits))
        config.dicomteam_limits = limits
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the project server for {project_dir} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
