"""DicomTeamAnnotateLogic driven headless: real DICOM files, real ingestion, real MRML nodes.

The logic class lives in the module file, which needs Slicer's application modules to import;
as in the contract tests, a fresh interpreter gets stand-ins for those (only the base classes,
i18n and the parameter-node decorator; MRML, slicer.util and vtk are slicer-core's own). The
widget and the layout (which need the Qt application) are not exercised here: the module's
own DicomTeamAnnotateTest does that inside Slicer.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import contract_support as cs

SCRIPT = textwrap.dedent("""
    import json, os, sys, tempfile, threading
    sys.path.insert(0, {testing!r})
    import contract_support as cs
    cs._import_path_setup()
    cs.install_app_stand_ins()
    import numpy as np
    import slicer
    slicer.mrmlScene = slicer.vtkMRMLScene()  # what the application provides
    import DicomTeamAnnotate as M
    from DicomTeamAnnotateLib.core.tasks import TaskCancelled
    from DicomTeamAnnotateLib.slicer.mrml import node_to_volume
    from DicomTeamAnnotateLib.demo.phantom import make_phantom, write_phantom_dicom

    out = {{}}
    logic = M.DicomTeamAnnotateLogic()
    phantom = make_phantom(seed=1, shape=(10, 32, 40), spacing=(1.25, 1.5, 2.5))
    with tempfile.TemporaryDirectory() as folder:
        write_phantom_dicom(phantom, folder)
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not a DICOM file")
        nodes, result = logic.loadDicom([folder])
        task = logic.startIngest([folder])
        threaded = task.result(timeout=120)
        gate, ingest = threading.Event(), logic.ingest
        logic.ingest = lambda paths: (gate.wait(60), ingest(paths))[1]  # still reading when Cancel comes
        cancelled = logic.startIngest([folder])
        cancelled.cancel()
        gate.set()
        try:
            cancelled.result(timeout=120)
            out["cancel"] = "not cancelled"
        except TaskCancelled:
            out["cancel"] = "cancelled"
    out["nodes"] = len(nodes)
    out["threaded_series"] = len(threaded.series)
    node = nodes[0]
    out["class"] = node.GetClassName()
    out["name"] = node.GetName()
    out["series_attribute"] = node.GetAttribute("DicomTeamAnnotate.SeriesId")
    vol = node_to_volume(node)
    ref = phantom.volume
    out["voxels_equal"] = bool(np.array_equal(vol.array, ref.array))
    out["geometry_error"] = float(max(np.abs(np.subtract(vol.geometry.to_lps().origin, ref.geometry.to_lps().origin)).max(),
                                      np.abs(np.subtract(vol.geometry.spacing, ref.geometry.spacing)).max(),
                                      np.abs(np.subtract(vol.geometry.to_lps().direction,
                                                         ref.geometry.to_lps().direction)).max()))
    out["rows"] = logic.reportRows(result)
    d = node.GetDisplayNode()
    out["header_window"] = [d.GetLevel(), d.GetWindow(), d.GetAutoWindowLevel()]
    out["presets"] = list(logic.windowPresets())
    out["lung"] = list(logic.applyWindowPreset(node, "lung"))
    d = node.GetDisplayNode()
    out["display_lung"] = [d.GetLevel(), d.GetWindow(), d.GetAutoWindowLevel()]
    out["custom"] = list(logic.applyWindowPreset(node, M.CUSTOM_PRESET, -100, 700))
    out["display_custom"] = [d.GetLevel(), d.GetWindow()]
    try:
        logic.applyWindowPreset(node, "no such preset")
        out["unknown_preset"] = "accepted"
    except ValueError as exc:
        out["unknown_preset"] = str(exc)
    failures = []
    class Broken:
        series_id = "1.2.3"
        metadata = {{}}
        volume = None
        warnings = []
    class Result:
        series = [Broken()] + list(result.series)
        rejected = []
    kept = logic.createVolumeNodes(Result(), failures)
    out["partial"] = [len(kept), [f[0] for f in failures]]
    print(json.dumps(out))
""")


def test_logic_loads_a_dicom_folder_into_volume_nodes_and_applies_presets():
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(testing=str(cs.ROOT / "Testing"))],
                          capture_output=True, text=True, timeout=600, cwd=str(cs.ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["nodes"] == 1 and out["threaded_series"] == 1
    assert out["class"] == "vtkMRMLScalarVolumeNode"
    assert out["name"].startswith("Synthetic CT phantom [")
    assert out["series_attribute"]
    assert out["voxels_equal"], "the node's voxels differ from the phantom written to DICOM"
    assert out["geometry_error"] < 1e-4
    assert out["cancel"] == "cancelled"
    rejected = [row for row in out["rows"] if row[0] == "rejected"]
    assert len(rejected) == 1 and rejected[0][1].endswith("notes.txt") and rejected[0][2]

    assert out["header_window"] == [40.0, 400.0, 0], "the DICOM header's window (the phantom writes 40/400)"
    assert "lung" in out["presets"] and "soft tissue" in out["presets"]
    assert out["lung"] == [-600.0, 1500.0]
    assert out["display_lung"] == [-600.0, 1500.0, 0]  # fixed window, auto window/level off
    assert out["custom"] == [-100.0, 700.0] and out["display_custom"] == [-100.0, 700.0]
    assert "no such preset" in out["unknown_preset"]
    assert out["partial"] == [1, ["1.2.3"]], "one broken series must not stop the others"
