"""The Segment Editor effect file, without the Slicer application: its structure (static) and its
image <-> array conversions, run on slicer-core's real vtkOrientedImageData in a fresh interpreter
(the application-only modules it imports get the contract checker's stand-ins there)."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EFFECT = ROOT / "SamPrompt" / "SegmentEditorSamPromptLib" / "SegmentEditorEffect.py"


def _effect_class():
    tree = ast.parse(EFFECT.read_text())
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SegmentEditorEffect")


def test_effect_class_follows_the_scripted_effect_pattern():
    cls = _effect_class()
    assert [b.id for b in cls.bases if isinstance(b, ast.Name)] == ["AbstractScriptedSegmentEditorEffect"]
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    for name in ("clone", "icon", "helpText", "setupOptionsFrame", "activate", "deactivate",
                 "processInteractionEvents", "cleanup", "sourceVolumeNodeChanged"):
        assert name in methods, name
    apply_src = ast.get_source_segment(EFFECT.read_text(), methods["on_apply"])
    assert apply_src.count("saveStateForUndo()") == 1
    assert apply_src.index("saveStateForUndo()") < apply_src.index("modifySelectedSegmentByLabelmap(")
    assert "xyToIjk" in ast.get_source_segment(EFFECT.read_text(), methods["to_plane"])
    assert 'scriptedEffect.name = "SAM Prompt"' in EFFECT.read_text()


def test_panel_and_effect_share_one_settings_and_segmenter_path():
    """Both read settings with shared.read_settings and get segmenters from shared.segmenter_for; the
    panel keeps no settings keys, defaults, validation or cache of its own."""
    panel_path = ROOT / "SamPrompt" / "SamPrompt.py"
    panel, effect = panel_path.read_text(), EFFECT.read_text()
    top = {t.id for n in ast.parse(panel).body if isinstance(n, ast.Assign) for t in n.targets
           if isinstance(t, ast.Name)}
    assert not top & {"SETTINGS_PREFIX", "DEFAULT_SETTINGS", "DEVICES", "_shared"}, top
    for source in (panel, effect):
        assert "shared.read_settings(qt.QSettings())" in source
        assert "shared.segmenter_for(" in source and "shared.display_window(" in source
        assert "SamSegmenter(" not in source and "EmbeddingCache(" not in source
    assert "shared.write_settings(qt.QSettings()" in panel
    assert "shared.available_backends()" in panel and "shared.available_devices()" in panel
    for source in (panel, effect):
        assert "ensure_torch(" in source and "ensure_requirements(" in source
    to_plane = ast.get_source_segment(effect, {n.name: n for n in _effect_class().body
                                               if isinstance(n, ast.FunctionDef)}["to_plane"])
    assert "GetParentTransformNode()" in to_plane, "xyToIjk gets the segmentation's transform, as Slicer's effects"


def test_only_the_effect_imports_slicer_or_qt():
    lib = ROOT / "SamPrompt" / "SamPromptLib"
    for path in lib.rglob("*.py"):
        if path == EFFECT:
            continue
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"slicer", "qt", "ctk", "vtk"}, path


CHECK = textwrap.dedent("""
    import sys, types, importlib.util
    sys.path[:0] = [{testing!r}]
    import numpy as np, contract_support, slicer, vtk
    contract_support.install_app_stand_ins()
    editor = types.ModuleType("SegmentEditorEffects")
    editor.AbstractScriptedSegmentEditorEffect = type("AbstractScriptedSegmentEditorEffect", (), {{}})
    sys.modules["SegmentEditorEffects"] = editor
    spec = importlib.util.spec_from_file_location("sam_effect", {effect!r})
    effect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(effect)

    # An image as Slicer holds it: extent not starting at 0, RAS, flipped and scaled axes.
    image = slicer.vtkOrientedImageData()
    image.SetExtent(2, 6, 10, 13, 5, 7)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    from vtk.util import numpy_support
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    flat[:] = np.arange(flat.size)
    m = vtk.vtkMatrix4x4()
    for r, row in enumerate([[-0.8, 0, 0, 10], [0, -0.7, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]]):
        for c, v in enumerate(row):
            m.SetElement(r, c, v)
    image.SetImageToWorldMatrix(m)
    volume, start = effect._image_volume(image)
    assert volume.array.shape == (3, 4, 5) and tuple(start) == (2, 10, 5)
    # voxel (i, j, k) = (3, 11, 6) of the image is array[1, 1, 1]; both at the same RAS point
    assert volume.array[1, 1, 1] == image.GetScalarComponentAsDouble(3, 11, 6, 0)
    ras = np.array([-0.8 * 3 + 10, -0.7 * 11 + 20, 2.5 * 6 - 30])
    lps = volume.geometry.index_to_world([1, 1, 1])
    assert np.allclose(lps, ras * [-1, -1, 1]), (lps, ras)
    mask = np.zeros(volume.array.shape, np.uint8)
    mask[2, 3, 4] = 1
    out = effect._labelmap_like(image, mask)
    assert out.GetExtent() == image.GetExtent()
    assert out.GetScalarComponentAsDouble(6, 13, 7, 0) == 1 and out.GetScalarComponentAsDouble(2, 10, 5, 0) == 0
    m2 = vtk.vtkMatrix4x4(); out.GetImageToWorldMatrix(m2)
    assert all(m2.GetElement(r, c) == m.GetElement(r, c) for r in range(4) for c in range(4))
    print("ok")
""")


def test_effect_image_conversions_on_real_oriented_image_data():
    pytest.importorskip("slicer", reason="slicer-core (test extra) provides vtkOrientedImageData")
    code = CHECK.format(testing=str(ROOT / "Testing"), effect=str(EFFECT))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
