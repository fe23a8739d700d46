"""Pre-annotation through the store: a trained model's predictions as versions of kind ``prediction``.

    summary = preannotate(store, open_model(JOB_OR_MODEL), strategy="uncertainty", limit=10,
                          progress=task.report)

For each case not yet annotated (or the ``cases`` given), in the order of ``strategy``: fetch the
image, predict it, map the model's labels onto the project's ontology (by terminology, then by
name: ``core.segmentation.match_segments``) and push the result as a ``prediction`` whose
``meta`` names the model (name, backend, job id, weights sha256, round of the loop), the label
mapping and the uncertainty of the model's output.  The member who runs it must be a reviewer
or an admin; the version's author is that member, its ``meta.model`` the model that made it.

Resumable: a case that already has a prediction by these weights is skipped, and the version id
is derived from the weights and the case image, so a run interrupted anywhere (even between a
push and its answer) and started again pushes every prediction exactly once.  A case whose
geometry does not fit the model is skipped with the reason.  ``progress(fraction, message)`` is
called before each case; a ``BackgroundTask.report`` raises there when the user cancelled.
"""
from __future__ import annotations

import hashlib
import logging
import random
import tempfile
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.segmentation import Segment, Segmentation, match_segments
from DicomTeamAnnotateLib.io.segmentations import write_seg_nrrd
from DicomTeamAnnotateLib.io.volumes import read_volume
from DicomTeamAnnotateLib.store import Forbidden
from DicomTeamAnnotateLib.store.auth import is_staff
from DicomTeamAnnotateLib.store.model import Conflict
from DicomTeamAnnotateLib.worklist.rows import ORDERS
from TrainBridgeLib.loop.models import UNCERTAINTY_MEASURE

log = logging.getLogger(__name__)

STRATEGIES = ORDERS  # cases are picked in the worklist's orders (worklist.rows.order_rows)


def project_segments(project: dict) -> list[Segment]:
    """The project's ontology as Segments (name, value, colour, terminology)."""
    return [Segment(name=d["name"], label_value=int(d["value"]), color=tuple(d.get("color") or (0.5, 0.5, 0.5)),
                    terminology=d.get("terminology")) for d in project["labels"]]


def label_mapping(model, project: dict) -> dict:
    """{model value: project Segment} by terminology then name; a ValueError when nothing matches.

    Returns {'values': {model value: project Segment}, 'unmapped': [model label names the project lacks]}.
    """
    ontology = project_segments(project)
    partners = match_segments(ontology, model.labels, what=f"model {model.name}")
    values = {p.label_value: s for s, p in zip(ontology, partners) if p is not None}
    if not values:
        raise ValueError(f"none of the model's labels ({', '.join(s.name for s in model.labels)}) is in the project's "
                         f"ontology ({', '.join(s.name for s in ontology)}): by terminology or by name")
    unmapped = [s.name for s in model.labels if s.label_value not in values]
    return {"values": values, "unmapped": unmapped}


def prediction_version_id(weights_sha256: str, case: dict) -> str:
    """The version id of these weights' prediction of this case image: a rerun pushes it once."""
    key = f"{weights_sha256}:{case['case_id']}:{case.get('image_sha256') or ''}"
    return "p" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:31]


def loop_round(versions_by_case: dict, weights_sha256: str) -> int:
    """This model's round of the loop: 2 for the project's first model (round 1 is annotation from
    scratch), one more for each model with other weights that pre-annotated before it."""
    first_seen: dict = {}
    for versions in versions_by_case.values():
        for v in versions:
            if v["kind"] == "prediction":
                model = (v.get("meta") or {}).get("model") or {}
                sha = model.get("weights_sha256")
                if sha and (sha not in first_seen or v["created"] < first_seen[sha][0]):
                    first_seen[sha] = (v["created"], model.get("round"))
    if weights_sha256 in first_seen and first_seen[weights_sha256][1]:
        return int(first_seen[weights_sha256][1])
    earlier = [sha for sha, (created, _) in first_seen.items() if sha != weights_sha256]
    return 2 + len(earlier)


def candidate_cases(store, cases: list | None) -> tuple[list, dict]:
    """(cases to consider, {case id: versions}): the given ones, else those without an annotation or an
    adjudicated version yet."""
    all_cases = {c["case_id"]: c for c in store.list_cases()}
    if cases:
        unknown = [c for c in cases if c not in all_cases]
        if unknown:
            raise ValueError(f"no such case(s) in the project: {', '.join(unknown)}")
    versions = {cid: store.list_versions(cid) for cid in all_cases}
    if cases:
        chosen = [all_cases[c] for c in cases]
    else:
        chosen = [c for cid, c in sorted(all_cases.items())
                  if not any(v["kind"] in ("annotation", "adjudicated") for v in versions[cid])]
    return chosen, versions


def preannotate(store, model, *, cases: list | None = None, strategy: str = "first", limit: int | None = None,
                seed: int = 0, work_dir=None, progress=None) -> dict:
    """Predict and push; returns {'pushed': [{case_id, version, uncertainty}], 'skipped': [{case_id, reason}],
    'round', 'model', 'unmapped'}.  See the module docstring."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    me = store.whoami()
    if not is_staff(me.get("role", "")):  # refused before any case is predicted, not at the first push
        raise Forbidden(f"only reviewers and admins push predictions (versions of kind 'prediction'); "
                        f"{me.get('user')!r} is {me.get('role')!r} in this project")
    project = store.project()
    mapping = label_mapping(model, project)
    chosen, versions = candidate_cases(store, cases)
    rnd = loop_round(versions, model.weights_sha256)
    identity = {**model.identity(), "round": rnd}
    skipped, todo = [], []
    for case in chosen:
        done = [v for v in versions[case["case_id"]] if v["kind"] == "prediction"
                and ((v.get("meta") or {}).get("model") or {}).get("weights_sha256") == model.weights_sha256]
        if done:
            skipped.append({"case_id": case["case_id"], "reason": f"already pre-annotated by this model ({done[-1]['id']})"})
        else:
            todo.append(case)
    if strategy == "random":
        random.Random(seed).shuffle(todo)
    # "uncertainty" with a limit predicts every candidate first and pushes the least certain; otherwise each
    # prediction is pushed as soon as it is made, so a cancelled run keeps what it did ("first"/"random" stop
    # at the limit)
    ranked = strategy == "uncertainty" and limit is not None
    budget = len(todo) if ranked or limit is None else min(limit, len(todo))
    results = []
    with tempfile.TemporaryDirectory(prefix="preannotate-", dir=work_dir) as tmp:
        for n, case in enumerate(todo[:budget]):
            cid = case["case_id"]
            if progress:
                progress(n / max(1, budget), f"predicting {cid} ({n + 1}/{budget})")
            outcome = _predict_case(store, model, case, mapping, Path(tmp) / cid)
            if "reason" in outcome:
                skipped.append({"case_id": cid, "reason": outcome["reason"]})
                continue
            results.append(outcome)
            if not ranked:
                outcome["version"] = _push(store, case, outcome, identity, mapping)
        if ranked:
            results.sort(key=lambda r: -r["uncertainty"]["score"])
            kept = results[:limit]
            for r in results[len(kept):]:
                skipped.append({"case_id": r["case"]["case_id"], "reason": "less uncertain than the ones pushed "
                                f"(score {r['uncertainty']['score']:.3f}; --limit {limit})"})
            for n, r in enumerate(kept):
                if progress:
                    progress(n / max(1, len(kept)), f"pushing {r['case']['case_id']}")
                r["version"] = _push(store, r["case"], r, identity, mapping)
            results = kept
    if progress:
        progress(1.0, f"{len(results)} prediction(s) pushed, {len(skipped)} case(s) skipped")
    return {"pushed": [{"case_id": r["case"]["case_id"], "version": r["version"]["id"],
                        "uncertainty": r["uncertainty"]["score"]} for r in results],
            "skipped": skipped, "round": rnd, "model": identity, "unmapped": mapping["unmapped"]}


def _predict_case(store, model, case: dict, mapping: dict, folder: Path) -> dict:
    """{'case', 'path' (.seg.nrrd in the project's ontology), 'uncertainty', 'present'} or {'reason'}."""
    problem = model.fit_problem(Geometry.from_dict(case["geometry"]))
    if problem:
        return {"reason": problem}
    fetched = store.fetch_image(case["case_id"], folder)
    image = read_volume(fetched)
    if Path(fetched).resolve().parent == Path(folder).resolve():  # our copy (or link), never a cache's file
        Path(fetched).unlink(missing_ok=True)  # a run over a whole project keeps one image on disk at a time
    problem = model.fit_problem(image.geometry)
    if problem:
        return {"reason": problem}
    prediction = model.predict(image)
    out = np.zeros(prediction.labels.shape, dtype=np.uint16 if max(
        [s.label_value for s in mapping["values"].values()] + [0]) > 255 else np.uint8)
    for model_value, segment in mapping["values"].items():
        out[prediction.labels == model_value] = segment.label_value
    segments = sorted(mapping["values"].values(), key=lambda s: s.label_value)
    seg = Segmentation.from_labelmap(out, image.geometry, segments)
    path = write_seg_nrrd(seg, folder / f"{case['case_id']}.prediction.seg.nrrd")
    present = sorted(s.name for s in segments if (out == s.label_value).any())
    return {"case": case, "path": path, "uncertainty": prediction.uncertainty, "present": present}


def _push(store, case: dict, outcome: dict, identity: dict, mapping: dict) -> dict:
    """Push one prediction (idempotent: its id is derived from the weights and the image)."""
    meta = {"model": identity, "uncertainty": outcome["uncertainty"],
            "labels": {str(v): s.name for v, s in sorted(mapping["values"].items())},
            "unmapped_labels": mapping["unmapped"], "segments_present": outcome["present"]}
    version_id = prediction_version_id(identity["weights_sha256"], case)
    message = (f"prediction by {identity['name']} (round {identity['round']}; uncertainty "
               f"{outcome['uncertainty']['score']:.3f}: {UNCERTAINTY_MEASURE})")
    try:
        return store.push_version(case["case_id"], outcome["path"], kind="prediction", meta=meta, message=message,
                                  version_id=version_id)
    except Conflict:  # pushed by an earlier run whose result differs in its last bits: that one stands
        return store.get_version(version_id)
