"""A stand-in for Slicer's ``SegmentEditorEffects`` package (the Python base classes of effects).

``AbstractScriptedSegmentEditorEffect(scriptedEffect)`` keeps the adaptor as ``self.scriptedEffect``;
``register()`` hands it to the effect factory; the coordinate helpers wrap the adaptor's static
``xyToIjk`` and return plain lists of ints, as Slicer's do.
"""
import qt
import slicer


class AbstractScriptedSegmentEditorEffect:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def register(self):
        return slicer.qSlicerSegmentEditorEffectFactory.instance().registerEffect(self.scriptedEffect)

    def cleanup(self):
        pass

    def xyToIjk(self, xy, viewWidget, image, parentTransformNode=None):
        point = qt.QPoint(int(xy[0]), int(xy[1]))
        ijk = self.scriptedEffect.xyToIjk(point, viewWidget, image, parentTransformNode)
        return [int(round(ijk.x())), int(round(ijk.y())), int(round(ijk.z()))]


__all__ = ["AbstractScriptedSegmentEditorEffect"]
