"""Scenario: the training job as the panel follows it (see test_gui_trainbridge.py).

argv: TMP_DIR. A real MONAI job (tiny phantoms, CPU) is started through TrainBridgeLogic; the
panel's poll reads its epochs, losses and curves while it runs; a second logic (Slicer restarted)
reattaches from the folder and cancels it (the supervisor is gone). Resume and model export are
covered by TrainBridgeLib's own tests.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("TrainBridge")

from DicomTeamAnnotateLib.demo.phantom import LABEL_VALUES, make_phantom  # noqa: E402
from TrainBridgeLib.export.cases import CaseInput  # noqa: E402
from TrainBridgeLib.jobs.runner import pid_alive  # noqa: E402

tmp = Path(sys.argv[1])
logic = M.TrainBridgeLogic()
cases = [CaseInput(f"c{p}", f"P{p}", [ph.volume], ph.segmentation())
         for p, ph in enumerate(make_phantom(seed=p, shape=(16, 24, 24)) for p in range(3))]
dataset = logic.exportDataset(cases, tmp / "raw", "Tiny", labels=[{"name": n, "value": v} for n, v in LABEL_VALUES.items()],
                              folds=2, test_fraction=0.0)["dataset_dir"]
out = {}
try:
    logic.startTraining("", "")
    out["no_folders"] = "accepted"
except ValueError as exc:
    out["no_folders"] = str(exc)

job = logic.startTraining(dataset, tmp / "job", backend="monai", arch="segresnet", epochs=40, device="cpu",
                          threads=1, extra_args=["--iterations", "1"])
seen = []
deadline = time.monotonic() + 240
while time.monotonic() < deadline:  # the panel's poll: until an epoch is recorded and drawn
    status = logic.jobStatus()
    seen.append(status["state"])
    if status["epoch"] is not None and status["curves_png"] or status["state"] in logic.finalStates():
        break
    time.sleep(1.0)
out["running_status"] = {k: status[k] for k in ("state", "step", "backend", "num_epochs")}
out["status_text"] = logic.statusText(status)
out["curves_png"] = bool(status["curves_png"]) and Path(status["curves_png"]).read_bytes()[:4] == b"\x89PNG"

# Slicer restarted: a new logic reattaches from the folder, then cancels
later = M.TrainBridgeLogic()
attached = later.attachJob(tmp / "job")
out["attached_state"] = later.jobStatus()["state"]
pid = attached.record["pid"]
out["cancelled"] = attached.cancel(grace_s=10)
out["supervisor_gone"] = not pid_alive(pid)
out["after_cancel"] = later.jobStatus()["state"]
try:
    M.TrainBridgeLogic().attachJob(tmp / "not-a-job")
    out["attach_nothing"] = "accepted"
except FileNotFoundError as exc:
    out["attach_nothing"] = str(exc)
gui_support.emit(out)
