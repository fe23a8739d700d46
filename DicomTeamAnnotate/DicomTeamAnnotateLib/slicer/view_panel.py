"""The View section of the DicomTeamAnnotate panel: window presets (or a custom level/width), three planes.

The volume, the preset and the custom window are the module's parameter node's (saved with the
scene); this section reads and writes them through ``panel.parameters``.
"""
from __future__ import annotations

from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Section

CUSTOM_PRESET = "custom"  # the windowing module's name for a user-given level/width


class ViewSection(Section):
    """Window presets and the three-plane layout for the selected volume."""

    def __init__(self, panel):
        super().__init__(panel)
        self.presets: list[tuple[str, str]] = []  # (name, tool tip)
        self.presets_error = ""
        try:
            for name, (level, width) in self.logic.windowPresets().items():
                self.presets.append((name, _("level {level:g} / width {width:g} HU").format(level=level, width=width)))
            self.presets.append((CUSTOM_PRESET, _("the level and width below")))
        except (ImportError, ValueError) as exc:
            self.presets_error = _("Window presets are not available: {error}").format(error=exc)

    @property
    def parameters(self):
        return self.panel.parameters

    @property
    def volume(self):
        return self.parameters.volume if self.parameters is not None else None

    @property
    def has_volume(self) -> bool:
        return self.volume is not None

    @property
    def custom(self) -> bool:
        return self.parameters is not None and self.parameters.windowPreset == CUSTOM_PRESET

    def set_volume(self, node) -> None:
        if self.parameters is not None:
            self.parameters.volume = node
        self.changed()

    def choose_preset(self, name) -> None:
        """The user picked a preset: apply it."""
        if self.parameters is None:
            return
        self.parameters.windowPreset = name
        self.apply()

    def set_custom_window(self, level=None, width=None) -> None:
        """The custom level or width changed: apply it when the custom preset is chosen."""
        if self.parameters is None:
            return
        if level is not None:
            self.parameters.customLevel = float(level)
        if width is not None:
            self.parameters.customWidth = float(width)
        if self.custom:
            self.apply()

    def apply(self) -> None:
        p = self.parameters
        if p is None or p.volume is None:
            return
        try:
            self.logic.applyWindowPreset(p.volume, p.windowPreset, p.customLevel, p.customWidth)
        except ValueError as exc:
            self.ui.status(_("Window not applied: {error}").format(error=exc))
        self.changed()

    def case_opened(self, volume_node, preset) -> None:
        """A case was opened: its volume is the one viewed, with the project's preset when this Slicer has it."""
        if self.parameters is None:
            return
        self.parameters.volume = volume_node
        if preset and preset in {name for name, _tip in self.presets}:
            self.parameters.windowPreset = preset
        self.changed()

    def three_planes(self) -> None:
        try:
            self.logic.setThreePlaneLayout(self.volume)
        except Exception as exc:
            self.ui.error(_("Could not set the three-plane layout: {error}").format(error=exc))
