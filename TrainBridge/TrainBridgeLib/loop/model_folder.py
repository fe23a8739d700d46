"""What a folder holds as a model for pre-annotation, read from its small files only (no torch, no model).

The panel asks before it offers 'Pre-annotate' and before it installs anything; ``open_model``
(loop.backends) loads what this names. Kinds:

* ``job``: a training job (``job.json``; its backend: ``monai`` or ``nnunet``), finished or with a checkpoint;
* ``loop``: a loop folder of ``dicomteam train --when-new`` (``loop.json``): its latest finished job;
* ``export``: a model from 'Model export' (``manifest.json``; ONNX when it holds ``model.onnx``);
* ``nnunet``: an nnU-Net model folder (``plans.json`` + ``dataset.json``).
"""
from __future__ import annotations

import json
from pathlib import Path

from TrainBridgeLib.jobs.runner import JOB_FILE

LOOP_FILE = "loop.json"
EXPECTED = ("job.json of a training job, loop.json of a training loop, manifest.json of an exported model, "
            "or plans.json + dataset.json of an nnU-Net model folder")


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a JSON object")
    return doc


def describe_model_folder(folder) -> dict:
    """{'kind', 'backend' ('monai', 'nnunet' or 'onnx'), 'folder' (the job a loop resolves to), 'problem'}.

    ``problem`` is None when the folder can pre-annotate, else a sentence naming the folder or file.
    """
    path = Path(str(folder or "")).expanduser()
    if not str(folder or "").strip() or not path.is_dir():
        return {"kind": None, "backend": None, "folder": None, "problem": f"{folder or '(none)'}: no such folder"}
    try:
        if (path / LOOP_FILE).exists() and not (path / JOB_FILE).exists():
            rounds = _read(path / LOOP_FILE).get("rounds") or []
            for rnd in reversed(rounds):
                job = Path(str(rnd.get("job", "")))
                if (job / JOB_FILE).exists() and _read(job / JOB_FILE).get("state") == "finished":
                    return {**describe_model_folder(job), "kind": "loop"}
            return {"kind": "loop", "backend": None, "folder": None,
                    "problem": f"{path}: no training of this loop has finished yet"}
        if (path / JOB_FILE).exists():
            record = _read(path / JOB_FILE)
            if record.get("state") != "finished" and not any(path.glob("checkpoint_*.pt*")):
                problem = f"{path}: the training job is {record.get('state')} and has no checkpoint yet"
            else:
                problem = None
            return {"kind": "job", "backend": "nnunet" if record.get("backend") == "nnunet" else "monai",
                    "folder": str(path), "state": record.get("state"), "problem": problem}
    except ValueError as exc:
        return {"kind": None, "backend": None, "folder": None, "problem": str(exc)}
    if (path / "manifest.json").exists():
        return {"kind": "export", "backend": "onnx" if (path / "model.onnx").exists() else "monai",
                "folder": str(path), "problem": None}
    if (path / "plans.json").exists() and (path / "dataset.json").exists():
        return {"kind": "nnunet", "backend": "nnunet", "folder": str(path), "problem": None}
    return {"kind": None, "backend": None, "folder": None, "problem": f"{path}: not a model (expected {EXPECTED})"}
