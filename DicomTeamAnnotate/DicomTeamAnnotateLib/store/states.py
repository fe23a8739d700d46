"""Workflow states, derived from records: todo -> in progress -> submitted -> in review -> adjudicated.

Nothing stores "the current state"; it is the latest of the state events and pushes, so
concurrent writers never race on a state field.

* An annotator's state on a case: the latest of their explicit state events and their
  annotation pushes (a push means "in progress"); "todo" when there is neither.
* A case's state: "in review" or "adjudicated" when a reviewer's latest case-level event (or
  an adjudicated version, which counts as "adjudicated") says so; otherwise the aggregate of
  its assigned annotators: all submitted -> "submitted", any started -> "in progress", else "todo".
"""
from __future__ import annotations

from DicomTeamAnnotateLib.store.model import STATES

REVIEW_STATES = ("in_review", "adjudicated")


def annotator_state(state_events: list[dict], versions: list[dict], annotator: str) -> str:
    """One annotator's state on one case (events and versions of that case only)."""
    timeline = [(e["time"], e["id"], e["state"]) for e in state_events if e.get("annotator") == annotator]
    timeline += [(v["created"], v["id"], "in_progress") for v in versions
                 if v["author"] == annotator and v["kind"] == "annotation"]
    return max(timeline)[2] if timeline else "todo"


def case_override(state_events: list[dict], versions: list[dict]) -> str | None:
    """"in_review"/"adjudicated" when a reviewer has put the case there, else None."""
    timeline = [(e["time"], e["id"], e["state"]) for e in state_events if not e.get("annotator")]
    timeline += [(v["created"], v["id"], "adjudicated") for v in versions if v["kind"] == "adjudicated"]
    if not timeline:
        return None
    state = max(timeline)[2]
    return state if state in REVIEW_STATES else None


def case_state(state_events: list[dict], versions: list[dict], assigned: list[str]) -> dict:
    """{'state': case state, 'annotators': {user: state}} for one case."""
    annotators = {u: annotator_state(state_events, versions, u) for u in sorted(assigned)}
    override = case_override(state_events, versions)
    if override:
        state = override
    elif annotators and all(s == "submitted" for s in annotators.values()):
        state = "submitted"
    elif any(s != "todo" for s in annotators.values()) or any(v["kind"] == "annotation" for v in versions):
        state = "in_progress"
    else:
        state = "todo"
    return {"state": state, "override": override, "annotators": annotators}


def later_state(a: str, b: str) -> str:
    """The state further along the workflow."""
    return a if STATES.index(a) >= STATES.index(b) else b
