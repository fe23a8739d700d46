"""What the SAM Prompt effect shows and does, without Qt or VTK.

The effect (SegmentEditorSamPromptLib/SegmentEditorEffect.py) turns mouse events into
``prompt(plane, slice, box | point)``, and copies this model's state to its options panel and its
preview segment on ``on_change``. Model calls run on a worker; results come back on the main thread
through the UI services' clock.

Stop and Cancel are honest: a task cannot always be interrupted (a single prompt is one model call),
so every task carries the generation it was started in; Stop, Cancel, a new source volume or leaving
the effect start a new generation, and a result from an older one is dropped unseen. The session a
running worker uses is never cleared under it: the model only lets go of it.
"""
from __future__ import annotations

import logging

from DicomTeamAnnotateLib.core.tasks import BackgroundTask, TaskCancelled
from DicomTeamAnnotateLib.slicer.i18n import tr as _
from DicomTeamAnnotateLib.slicer.panel import Notifier
from SamPromptLib import shared
from SamPromptLib.backends.remote import RemoteRefused, RemoteSamError
from SamPromptLib.requirements import NOTHING, feature_for_backend
from SamPromptLib.segmenter import PromptSession

POLL_MS = 100


class EffectModel(Notifier):
    """Prompts, preview, propagation, Stop/Cancel/Apply of the SAM Prompt effect."""

    def __init__(self, ui, installer):
        super().__init__()
        self.ui, self.installer = ui, installer
        self.session = None          # PromptSession of the preview
        self.segmenter = None
        self.source = None           # (Volume, volume id, window)
        self.settings = None
        self.remote = None           # (project store, case id) when the settings say run_on "server"
        self.answered_by = ""        # who computed the last mask (this computer or the project server)
        self.fallback_offered = False  # the server failed: the effect offers this computer's model
        self.status, self.error = _("Drag a box around the structure in a slice view."), False
        self.progress = None         # (fraction or None, message) while a task runs
        self.preview_version = 0     # increases whenever the preview mask changes
        self.task = None
        self._on_done = None
        self._generation = 0
        self._task_generation = -1
        self._clock = ui.clock(POLL_MS, self.poll)
        # the open project case's EffortTracker (worklist.effort) when the effect edits its segmentation,
        # else None: the effect sets it (connection.current_effort); prompts and propagations are counted there
        self.effort = lambda: None

    # ----- state ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.task is not None

    @property
    def has_preview(self) -> bool:
        return self.session is not None and bool(self.session.results)

    @property
    def can_propagate(self) -> bool:
        return self.has_preview and not self.busy

    can_apply = can_propagate

    @property
    def can_cancel(self) -> bool:
        return self.has_preview or self.busy

    def say(self, text: str, error: bool = False) -> None:
        self.status, self.error = text, error
        self.changed()

    # ----- inputs ---------------------------------------------------------------------------------
    def read_settings(self) -> bool:
        """The settings the SamPrompt panel saved; their backend's packages installed (main thread)."""
        try:
            self.settings = shared.read_settings(self.ui.settings())
        except ValueError as exc:
            self.say(str(exc), error=True)
            return False
        remote = self.settings["run_on"] == "server"
        if not self.installer.ensure(NOTHING if remote else feature_for_backend(self.settings["backend"])):
            self.say(_("SAM Prompt needs its Python packages; nothing was installed."), error=True)
            return False
        return True

    def set_remote(self, store, case_id) -> bool:
        """The project case the source volume is, on the server the hub module is connected to."""
        if store is None or not case_id or not str(getattr(store, "location", "")).startswith(("http://", "https://")):
            self.remote = None
            self.say(_("Segmenting on the project server needs a case opened from a project server in the DICOM "
                       "Team Annotate module; or choose 'This computer' in the SAM Prompt module."), error=True)
            return False
        if self.remote is None or self.remote[1] != case_id or self.remote[0] is not store:
            self.discard()
        self.remote = (store, str(case_id))
        return True

    def use_local(self) -> None:
        """After a server failure: this computer's model from now on (the setting is saved)."""
        shared.write_settings(self.ui.settings(), {"run_on": "local"})
        self.fallback_offered = False
        self.remote = None
        self.say(_("SAM Prompt runs on this computer now; prompt again."))

    def set_source(self, volume, volume_id: str, window) -> None:
        """The source volume (a new one drops the preview and prompts)."""
        if self.source is None or self.source[1] != volume_id or self.source[2] != window:
            self.discard()
        self.source = (volume, volume_id, window)

    # ----- prompts and propagation ------------------------------------------------------------------
    def prompt(self, plane: str, k: int, box=None, point=None, negative: bool = False) -> bool:
        """A box (A0, B0, A1, B1) or a click (A, B) on slice ``k`` of ``plane``: predict it on a worker."""
        if self.busy:
            self.say(_("Still working; wait or press Stop."))
            return False
        if self.source is None:
            self.say(_("Select a source volume first."), error=True)
            return False
        volume, _volume_id, window = self.source
        settings, current = self.settings, self.session
        remote = self.remote if settings["run_on"] == "server" else None

        def work(task):
            if remote is not None:  # the server embeds the case it holds; only the prompt travels
                segmenter = shared.remote_segmenter_for(volume, remote[0], remote[1], settings, window)
            else:  # keyed by content, not node: the panel's "precompute the volume" fills the same cache
                segmenter = shared.segmenter_for(volume, None, settings, window)
            if current is None or current.plane != plane or current.segmenter is not segmenter:
                session = PromptSession(segmenter, plane)
            else:  # a copy: a stopped prompt must leave the preview and what Apply writes as they are
                session = current.fork()
            if box is not None:
                old = session.anchors.get(k)
                result = session.prompt(k, box=box, points=old.points if old else None,
                                        labels=old.labels if old else None)
            else:
                result = session.add_point(k, point, positive=not negative)
            return segmenter, session, result

        self._start(work, lambda out: self._prompted(plane, k, *out),
                    _("Segmenting {plane} slice {k} (the first time loads the model)...").format(plane=plane, k=k))
        return True

    def _prompted(self, plane, k, segmenter, session, result) -> None:
        self.segmenter, self.session = segmenter, session
        self.answered_by = shared.answered_by(segmenter)
        self.preview_version += 1
        tracker = self.effort()
        if tracker is not None:
            tracker.sam_prompt()
        self.say(_("{plane} slice {k}: quality {score:.2f}. Add clicks, propagate, or Apply.").format(
            plane=plane, k=k, score=result.score))

    def propagate(self, direction: str) -> bool:
        """Carry the preview through the volume from the prompted slices (a correction: from it only)."""
        if self.session is None or self.busy:
            return False
        session = self.session.fork()  # adopted when the propagation ends; Stop leaves the preview as it was
        last = session.last_prompted if len(session.anchors) > 1 else None

        def work(task):
            session.propagate(direction, start=last,
                              progress=lambda done, total: task.report(done / total, f"{done}/{total}"))
            return session

        self._start(work, self._propagated, _("Propagating {direction}...").format(direction=direction))
        return True

    def _propagated(self, session) -> None:
        self.session = session
        self.preview_version += 1
        tracker = self.effort()
        if tracker is not None:
            tracker.sam_propagation()
        stops = "; ".join(f"{k}: {why}" for k, why in self.segmenter.last_stops) or _("reached the volume's end")
        self.say(_("{n} slices. Stopped at {stops}. Fix a slice with a box and propagate again, or Apply.").format(
            n=len(self.session.results), stops=stops))

    # ----- background work --------------------------------------------------------------------------
    def _start(self, work, on_done, message: str) -> None:
        self._task_generation = self._generation
        self.task = BackgroundTask(work, name="SAM Prompt").start()
        self._on_done = on_done
        self.progress = (None, message)
        self._clock.start()
        self.say(message)

    def poll(self) -> None:
        """The clock, on the main thread: progress; then the result, unless it was stopped meanwhile."""
        task = self.task
        if task is None:
            self._clock.stop()
            return
        self.progress = task.progress
        if not task.done:
            self.changed()
            return
        self._clock.stop()
        self.task, on_done, self.progress = None, self._on_done, None
        stale = self._task_generation != self._generation
        try:
            result = task.result()
        except TaskCancelled:
            if stale:  # Cancel or leaving the effect already said what happened
                self.changed()
            else:
                self.say(_("Stopped."))
            return
        except RemoteSamError as exc:  # the server: what it finished stays, this computer is offered
            if stale:
                self.changed()
                return
            self._server_failed(exc)
            return
        except Exception as exc:  # shown to the user; details in the log
            logging.exception("SAM Prompt failed")
            if not stale:
                self.say(str(exc), error=True)
            else:
                self.changed()
            return
        if stale:
            self.changed()  # stopped, cancelled or left meanwhile: the late result is not shown
            return
        on_done(result)

    def _server_failed(self, exc) -> None:
        kept = ""
        if self.session is not None and exc.partial:
            self.session.results.update(exc.partial)  # the slices the server finished before it failed
            self.preview_version += 1
            kept = " " + _("The {n} slice(s) it finished are kept in the preview.").format(n=len(exc.partial))
        if isinstance(exc, RemoteRefused):
            self.say(_("The project server refused: {error}").format(error=exc), error=True)
            return
        self.fallback_offered = True
        self.say(_("The project server did not answer: {error}.{kept} Press 'Use this computer' to segment "
                   "with the model in Slicer.").format(error=exc, kept=kept), error=True)

    def stop(self) -> None:
        """'Stop': a propagation stops at its next slice; any result of the running task is dropped."""
        if self.task is not None:
            self.task.cancel()
            self._generation += 1
            self.say(_("Stopped."))

    def discard(self) -> None:
        """Drop the preview and the prompts (the session is let go, never cleared under a worker)."""
        self._generation += 1
        self.session = None
        self.preview_version += 1
        self.changed()

    def cancel(self) -> None:
        """'Cancel': stop the work and drop the preview and prompts."""
        self.stop()
        self.discard()
        self.say(_("Cancelled. Drag a box in a slice view."))

    def applied(self) -> None:
        """The effect wrote the preview into the segment."""
        self.discard()
        self.say(_("Applied. Drag a box for the next structure."))

    def deactivate(self) -> None:
        """The user left the effect: stop, drop the preview; polling goes on until the worker ends."""
        self.stop()
        self.discard()
