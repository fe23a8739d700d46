"""Scenario: SamPromptLogic settings and precomputation (see test_gui_samprompt.py).

argv: TMP_DIR. Settings round trip through a settings store, refusals; the real LiteMedSAM (PyTorch
runtime, shipped weights) precomputes every axial slice of a small phantom volume node into the
shared cache, with the node's display window; a segmenter built as the effect builds it then finds
those embeddings; cancel drops the queue; a cache too small for the volume is reported.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gui_support  # noqa: E402

M = gui_support.load_module("SamPrompt")

from DicomTeamAnnotateLib.mrml import apply_window_to_display_node, volume_to_node  # noqa: E402
from DicomTeamAnnotateLib.phantom import make_phantom  # noqa: E402


class DictSettings(dict):
    """The QSettings calls the logic makes, on a dict (values come back as strings, as from an INI file)."""

    def value(self, key, default=None):
        return str(self[key]) if key in self else default

    def setValue(self, key, value):
        self[key] = value


out = {}
logic = M.SamPromptLogic()
store = DictSettings()
out["defaults"] = logic.readSettings(store)
written = logic.writeSettings(store, {"backend": "litemedsam-torch", "device": "cpu", "cacheMB": 64,
                                      "precomputeNeighbours": 3})
out["read_back"] = logic.readSettings(store) == written
out["keys"] = sorted(store)
refusals = {}
for bad in ({"device": "tpu"}, {"backend": "nope"}, {"cacheMB": 1}, {"precomputeNeighbours": "x"}):
    try:
        logic.writeSettings(DictSettings(), bad)
        refusals[str(bad)] = "accepted"
    except ValueError as exc:
        refusals[str(bad)] = str(exc)
out["refusals"] = refusals
broken = DictSettings({"SamPrompt/device": "tpu"})
out["broken_store_gives_defaults"] = logic.readSettings(broken) == M.DEFAULT_SETTINGS
out["sam_without_checkpoint"] = logic.settingsProblem(logic.checkSettings({"backend": "sam-vit_b"}))
out["options"] = logic.segmenterOptions(written)

# --- precompute a whole plane of a volume node into the shared cache ---------------------------------
phantom = make_phantom(seed=0, shape=(4, 64, 64), spacing=(1.5, 1.5, 3.0))
node = volume_to_node(phantom.volume, name="phantom")
apply_window_to_display_node(node, (50.0, 350.0))
window = logic.displayWindow(node)
out["window"] = list(window)
t0 = time.monotonic()
segmenter = logic.sharedSegmenter(logic.volumeFromNode(node), written, window=window, volumeKey=logic.volumeKey(node))
out["same_segmenter"] = logic.sharedSegmenter(logic.volumeFromNode(node), written, window=window,
                                              volumeKey=logic.volumeKey(node)) is segmenter
total = segmenter.precompute("axial")
while segmenter.precompute_pending():
    time.sleep(0.1)
out["precompute_s"] = round(time.monotonic() - t0, 1)
out["total"] = total
stats = logic.cacheStats()
out["cached"] = stats["entries"]
out["cache_bound"] = stats["max_bytes"]
out["note_when_all_fit"] = logic.cacheNote(segmenter, "axial")

# the effect's own segmenter on the same cache, window and backend: no new embedding computed
from SamPromptLib.segmenter import SamSegmenter  # noqa: E402

effect_side = SamSegmenter(logic.volumeFromNode(node), window=window, cache=logic.sharedCache(),
                           backend=segmenter.backend)
hits = logic.sharedCache().hits
effect_side.embedding("axial", 2)
out["effect_hit"] = logic.sharedCache().hits == hits + 1 and logic.cacheStats()["entries"] == total

# cancel: queue the coronal plane, drop it at once
queued = segmenter.precompute("coronal")
logic.cancelPrecompute(segmenter, "coronal")
out["queued_then_pending"] = [queued, segmenter.precompute_pending()]
while segmenter.precompute_pending():
    time.sleep(0.1)

# a cache too small for the plane is reported
logic.sharedCache(5 * 2**20)  # about one embedding
out["note_when_too_small"] = logic.cacheNote(segmenter, "axial")
logic.releaseSegmenters()
out["released"] = len(M._shared["segmenters"])
gui_support.emit(out)
