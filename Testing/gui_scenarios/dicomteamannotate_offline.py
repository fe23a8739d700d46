"""Scenario: the panel's logic against a real server that goes away and comes back.

argv: TMP_DIR. Alice connects with her token (kept by TokenStore, never in the scene), opens a
case over HTTP, the server is killed, her submit is queued (the banner's count), the worklist
reports the store unreachable; the server restarts on the same port and the queue is flushed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("DicomTeamAnnotate")

import numpy as np  # noqa: E402
import slicer  # noqa: E402
import store_support as ss  # noqa: E402

from DicomTeamAnnotateLib.slicer.mrml import segmentation_to_node  # noqa: E402
from DicomTeamAnnotateLib.slicer.project_panel import TokenStore  # noqa: E402
from DicomTeamAnnotateLib.store import StoreUnavailable  # noqa: E402
from DicomTeamAnnotateLib.worklist.offline import OfflineQueue  # noqa: E402


class DictSettings(dict):
    """The three QSettings calls TokenStore makes, on a dict."""

    def value(self, key, default=None):
        return self.get(key, default)

    def setValue(self, key, value):
        self[key] = value

    def remove(self, key):
        self.pop(key, None)


tmp = Path(sys.argv[1])
project = tmp / "project"
tokens = ss.make_team_project(project)
server = ss.ProcessServer(project).start()
out = {}
try:
    # --- the token: kept outside the scene ----------------------------------------------------
    settings = DictSettings()
    store_tokens = TokenStore(settings, keyring_module=None)
    out["saved_in"] = store_tokens.save(server.url, "alice", tokens["alice"])
    out["reloaded"] = store_tokens.load(server.url + "/", "alice") == tokens["alice"]
    out["other_user"] = store_tokens.load(server.url, "bob")
    out["settings_key_has_no_url"] = all(server.url not in k for k in settings)

    logic = M.DicomTeamAnnotateLogic()
    logic.queue = OfflineQueue(tmp / "queue")
    options = dict(cache=tmp / "cache", connect_window_s=0.5, retry_window_s=2.0)
    try:
        logic.connect(server.url, "alice", "wrong-token", **options)
        out["wrong_token"] = "accepted"
    except Exception as exc:
        out["wrong_token"] = type(exc).__name__
    logic.setStore(logic.connect(server.url, "alice", store_tokens.load(server.url, "alice"), **options)["store"])
    progress = []
    session = logic.loadCase(logic.fetchCase("c1", tmp / "work", progress=lambda d, t=None: progress.append((d, t))))
    out["download_progress_reaches_total"] = bool(progress) and progress[-1][0] == progress[-1][1]
    seg = logic.currentSegmentation(session)
    mask = np.zeros(seg.geometry.shape, bool)
    mask[3:7, 5:15, 5:15] = True
    segmentation_to_node(seg.with_masks({"spleen": mask}), reference_volume_node=session.volume_node,
                         node=session.segmentation_node)

    scene_file = tmp / "scene.mrml"
    slicer.mrmlScene.SetURL(str(scene_file))
    slicer.mrmlScene.Commit()
    out["token_in_scene"] = tokens["alice"] in scene_file.read_text(encoding="utf-8")

    # --- offline: the push is queued, the banner counts it ------------------------------------
    server.kill()
    version = logic.pushSegmentation(session, logic.currentSegmentation(session), "offline work", submit=True)
    logic.afterPush(session, version)
    out["queued"] = bool(version.get("queued"))
    out["banner_count"] = logic.offlineStatus()["queued"]
    out["parent_is_queued_version"] = session.parent == version["id"]  # its id is fixed before it is sent
    try:
        logic.worklistRows()
        out["worklist_offline"] = "answered"
    except StoreUnavailable:
        out["worklist_offline"] = "StoreUnavailable"

    # --- back online: the queue is sent -----------------------------------------------------------
    server.start()
    flushed = logic.flushQueue()
    out["sent"] = [v["id"] for v in flushed["sent"]] == [version["id"]]
    out["remaining"] = flushed["remaining"]
    out["banner_after"] = logic.offlineStatus()["queued"]
    rows = {r["case_id"]: r for r in logic.worklistRows()}
    out["state_after_flush"] = rows["c1"]["state"]
    out["versions_after_flush"] = [v["message"] for v in logic.listVersions("c1")]
finally:
    server.stop()
gui_support.emit(out)
