"""Scenario: the SamPrompt panel's settings and precomputation, on SamPromptLib.shared (see test_gui_samprompt.py).

argv: TMP_DIR. Settings round trip through a settings store with shared.read_settings/write_settings,
refusals naming the field; the real LiteMedSAM (PyTorch runtime, shipped weights) precomputes every
axial slice of a small phantom volume node through the panel's logic, with the node's display window;
the effect's own path (its Volume from a vtkOrientedImageData as the Segment Editor hands it, its
window, shared.segmenter_for) then gets the very same segmenter and finds those embeddings; cancel
drops the queue; a cache too small for the volume is reported; another backend resets the shared state.
"""
import importlib.util
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("SamPrompt")

import slicer  # noqa: E402
import vtk  # noqa: E402

from DicomTeamAnnotateLib.demo.phantom import make_phantom  # noqa: E402
from DicomTeamAnnotateLib.slicer.mrml import apply_window_to_display_node, volume_to_node  # noqa: E402
from SamPromptLib import shared  # noqa: E402


class DictSettings(dict):
    """The QSettings calls made on the store, on a dict (values come back as strings, as from an INI file)."""

    def value(self, key, default=None):
        return str(self[key]) if key in self else default

    def setValue(self, key, value):
        self[key] = value


def load_effect_module():
    """SegmentEditorSamPromptLib/SegmentEditorEffect.py with a stand-in for Slicer's SegmentEditorEffects base class."""
    editor = types.ModuleType("SegmentEditorEffects")
    editor.AbstractScriptedSegmentEditorEffect = type("AbstractScriptedSegmentEditorEffect", (), {})
    sys.modules["SegmentEditorEffects"] = editor
    path = Path(M.EFFECT_SOURCE)
    spec = importlib.util.spec_from_file_location("sam_effect", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


out = {}
logic = M.SamPromptLogic()
store = DictSettings()
out["defaults"] = shared.read_settings(store)
written = shared.write_settings(store, {"backend": "litemedsam-torch", "device": "cpu", "cache_mb": 64,
                                        "precompute_neighbours": 3})
out["read_back"] = shared.read_settings(store) == written
out["keys"] = sorted(store)
out["cache_bound_after_write"] = shared.shared_cache().max_bytes
refusals = {}
for bad in ({"device": "tpu"}, {"backend": "nope"}, {"cache_mb": 1}, {"precompute_neighbours": "x"},
            {"precompute_neighbours": 99}):
    try:
        shared.write_settings(DictSettings(), bad)
        refusals[str(bad)] = "accepted"
    except ValueError as exc:
        refusals[str(bad)] = str(exc)
out["refusals"] = refusals
try:
    shared.read_settings(DictSettings({"SamPrompt/device": "tpu"}))
    out["broken_store"] = "accepted"
except ValueError as exc:
    out["broken_store"] = str(exc)
out["sam_without_checkpoint"] = shared.settings_problem(shared.model_settings({"backend": "sam-vit_b"}))
try:
    logic.sharedSegmenter(make_phantom(seed=0, shape=(2, 16, 16)).volume, {"backend": "sam-vit_b"})
    out["sam_segmenter_without_checkpoint"] = "built"
except ValueError as exc:
    out["sam_segmenter_without_checkpoint"] = str(exc)

# --- the panel: precompute a whole plane of a volume node --------------------------------------------
phantom = make_phantom(seed=0, shape=(4, 64, 64), spacing=(1.5, 1.5, 3.0))
node = volume_to_node(phantom.volume, name="phantom")
apply_window_to_display_node(node, (50.0, 350.0))
window = logic.displayWindow(node)
out["window"] = list(window)
t0 = time.monotonic()
segmenter = logic.sharedSegmenter(logic.volumeFromNode(node), shared.read_settings(store), window=window)
out["same_segmenter"] = logic.sharedSegmenter(logic.volumeFromNode(node), shared.read_settings(store),
                                              window=window) is segmenter
total = segmenter.precompute("axial")
while segmenter.precompute_pending():
    time.sleep(0.1)
out["precompute_s"] = round(time.monotonic() - t0, 1)
out["total"] = total
stats = shared.shared_cache().stats()
out["cached"] = stats["entries"]
out["cache_bound"] = stats["max_bytes"]
out["note_when_all_fit"] = logic.cacheNote(segmenter, "axial")

# --- the effect's path: the source image as the Segment Editor hands it (the node's voxels, shallow
# copied, with its IJKToRAS), the effect's Volume, window and settings -> the same segmenter and keys
effect = load_effect_module()
image = slicer.vtkOrientedImageData()
image.ShallowCopy(node.GetImageData())
ijk_to_ras = vtk.vtkMatrix4x4()
node.GetIJKToRASMatrix(ijk_to_ras)
image.SetImageToWorldMatrix(ijk_to_ras)
effect_volume, _start = effect._image_volume(image)
effect_window = shared.display_window(node.GetDisplayNode())
effect_segmenter = shared.segmenter_for(effect_volume, None, shared.read_settings(store), effect_window)
out["effect_same_segmenter"] = effect_segmenter is segmenter
out["effect_same_key"] = effect_segmenter.key("axial", 2) == segmenter.key("axial", 2)
hits = shared.shared_cache().hits
effect_segmenter.embedding("axial", 2)
out["effect_hit"] = shared.shared_cache().hits == hits + 1 and shared.shared_cache().stats()["entries"] == total

# cancel: queue the coronal plane, drop it at once
queued = segmenter.precompute("coronal")
logic.cancelPrecompute(segmenter, "coronal")
out["queued_then_pending"] = [queued, segmenter.precompute_pending()]
while segmenter.precompute_pending():
    time.sleep(0.1)

# a cache too small for the plane is reported
shared.shared_cache(5 * 2**20)  # about one embedding
out["note_when_too_small"] = logic.cacheNote(segmenter, "axial")

# a new cache size only resizes; another backend resets models, segmenters and embeddings
shared.write_settings(store, {**written, "cache_mb": 128})
out["after_resize"] = [shared.shared_cache().max_bytes, len(shared._segmenters), len(shared.shared_cache())]
shared.write_settings(store, {**written, "cache_mb": 128, "backend": "litemedsam"})
out["after_backend_change"] = [len(shared._segmenters), len(shared._backends), len(shared.shared_cache())]
logic.release()
out["released"] = len(shared._segmenters)
gui_support.emit(out)
