"""The DicomTeamAnnotate panel's View section (ViewSection, a mixin of the widget).

Window presets of DicomTeamAnnotateLib.core.windowing, or a custom level/width, and the three-plane layout.
"""
import logging

CUSTOM_PRESET = "custom"  # the windowing module's name for a user-given level/width


class ViewSection:
    """The panel's View section: the preset list, applying a window, the three-plane layout."""

    def _fillPresetComboBox(self) -> None:
        """Called from setup(): the presets of DicomTeamAnnotateLib.core.windowing, then 'custom'."""
        import qt
        from slicer.i18n import tr as _

        combo = self.ui.windowPresetComboBox
        combo.clear()
        try:
            presets = self.logic.windowPresets()
        except (ImportError, ValueError) as exc:
            combo.enabled = False
            combo.toolTip = _("Window presets are not available: {error}").format(error=exc)
            logging.error(f"DicomTeamAnnotate: window presets not available: {exc}")
            return
        for name, (level, width) in presets.items():
            combo.addItem(name)
            combo.setItemData(combo.count - 1, _("level {level:g} / width {width:g} HU").format(level=level, width=width),
                              qt.Qt.ToolTipRole)
        combo.addItem(CUSTOM_PRESET)

    def onWindowPresetActivated(self, index) -> None:
        """Called when the user picks a window preset."""
        name = self.ui.windowPresetComboBox.itemText(index)
        self._parameterNode.windowPreset = name
        self._applyWindow()

    def onCustomWindowChanged(self, value) -> None:
        """Called when the user edits the custom level or width."""
        if self.ui.windowPresetComboBox.currentText == CUSTOM_PRESET:
            self._applyWindow()

    def _applyWindow(self) -> None:
        """Called when a preset or the custom window changes: apply it to the selected volume."""
        import slicer
        from slicer.i18n import tr as _

        p = self._parameterNode
        if not p or not p.volume:
            return
        # The spin boxes, not the parameter node: this slot can run before the node is updated.
        level, width = self.ui.customLevelSpinBox.value, self.ui.customWidthSpinBox.value
        with slicer.util.tryWithErrorDisplay(_("Could not apply the window preset.")):
            self.logic.applyWindowPreset(p.volume, p.windowPreset, level, width)
        self._updateButtonStates()

    def onThreePlaneLayout(self) -> None:
        """Called when the user clicks 'Three-plane layout'."""
        import slicer
        from slicer.i18n import tr as _

        with slicer.util.tryWithErrorDisplay(_("Could not set the three-plane layout.")):
            self.logic.setThreePlaneLayout(self._parameterNode.volume)
