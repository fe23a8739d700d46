"""The project store the hub module is connected to, for the other modules' panels.

ConsensusReview and TrainBridge work on the hub's connected project. They used to reach it through
``slicer.util.getModuleLogic("DicomTeamAnnotate")``, which builds the hub's panel on first call and
must not run on a worker thread. Here it is a plain value: the hub's logic sets it; the other
panels read it on the main thread and hand the store to their workers.
"""
from __future__ import annotations

# The node attribute that names the project case an MRML node belongs to (volume and segmentation of an
# opened case); the SAM effect reads it to ask the project server about that case.
CASE_ATTRIBUTE = "DicomTeamAnnotate.CaseId"

_state = {"store": None}


def set_current_store(store) -> None:
    _state["store"] = store


def current_store():
    """The connected store, or None when the hub is not connected."""
    return _state["store"]
