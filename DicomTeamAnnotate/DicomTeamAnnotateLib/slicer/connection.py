"""The project store the hub module is connected to, and the open case's effort, for the other modules.

ConsensusReview and TrainBridge work on the hub's connected project. They used to reach it through
``slicer.util.getModuleLogic("DicomTeamAnnotate")``, which builds the hub's panel on first call and
must not run on a worker thread. Here it is a plain value: the hub's logic sets it; the other
panels read it on the main thread and hand the store to their workers.
"""
from __future__ import annotations

# The node attribute that names the project case an MRML node belongs to (volume and segmentation of an
# opened case); the SAM effect reads it to ask the project server about that case.
CASE_ATTRIBUTE = "DicomTeamAnnotate.CaseId"

_state = {"store": None, "role": None, "effort": None, "effort_node": None}


def set_current_store(store, role=None) -> None:
    """The hub connected to ``store`` as a member of ``role`` (None: not known)."""
    _state["store"], _state["role"] = store, (role if store is not None else None)


def current_store():
    """The connected store, or None when the hub is not connected."""
    return _state["store"]


def current_role():
    """The connected member's role ('annotator', 'reviewer', 'admin'), or None when not known."""
    return _state["role"]


def set_current_effort(tracker, segmentation_node=None) -> None:
    """The open case's EffortTracker (worklist.effort) and its segmentation node; None when no case is open."""
    _state["effort"], _state["effort_node"] = tracker, segmentation_node


def current_effort(segmentation_node=None):
    """The open case's EffortTracker when ``segmentation_node`` is the case's segmentation, else None.

    The SAM effect counts its prompts here; work on any other segmentation is not the case's effort.
    """
    tracker = _state["effort"]
    if tracker is None or segmentation_node is None or segmentation_node is not _state["effort_node"]:
        return None
    return tracker


def open_case_effort():
    """The open case's EffortTracker, or None (tests and the console: whatever segmentation is edited)."""
    return _state["effort"]
