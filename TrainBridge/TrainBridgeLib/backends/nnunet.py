"""The nnU-Net v2 backend: a job of nnU-Net's own commands, and its log parsed into progress.

Steps: ``nnUNetv2_plan_and_preprocess -d ID -c CONFIG --verify_dataset_integrity``, then
``nnUNetv2_train ID CONFIG FOLD -tr TRAINER -device cpu|cuda|mps`` (resumed with ``--c``), then
``nnUNetv2_predict`` on imagesTs and our evaluation against labelsTs.  Short runs use nnU-Net's
fixed-length trainers (``nnUNetTrainer_1epoch``, ``_5epochs``, ...).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from TrainBridgeLib.jobs.progress import plot_progress, write_records
from TrainBridgeLib.jobs.runner import (
    CURVES_FILE,
    JOB_FILE,
    LOG_FILE,
    PROGRESS_FILE,
    Job,
    job_environment,
    make_step,
    python_executable,
)

# nnunetv2/training/nnUNetTrainer/variants/training_length/nnUNetTrainer_Xepochs.py
TRAINER_EPOCHS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)
DEFAULT_EPOCHS = 1000  # plain nnUNetTrainer
ENTRY_POINTS = {  # console script -> (module, function); used when the script is not on disk
    "nnUNetv2_plan_and_preprocess": ("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints",
                                     "plan_and_preprocess_entry"),
    "nnUNetv2_train": ("nnunetv2.run.run_training", "run_training_entry"),
    "nnUNetv2_predict": ("nnunetv2.inference.predict_from_raw_data", "predict_entry_point"),
}
_DATASET_DIR = re.compile(r"^Dataset(\d{3})_(.+)$")


def trainer_for_epochs(epochs: int | None) -> str:
    """nnU-Net's trainer class for an epoch count (None: the standard 1000-epoch trainer)."""
    if epochs is None or epochs == DEFAULT_EPOCHS:
        return "nnUNetTrainer"
    if epochs not in TRAINER_EPOCHS:
        raise ValueError(f"nnU-Net has fixed-length trainers only: epochs must be one of "
                         f"{', '.join(map(str, TRAINER_EPOCHS))} or {DEFAULT_EPOCHS}, got {epochs}")
    return f"nnUNetTrainer_{epochs}epoch" + ("" if epochs == 1 else "s")


def epochs_of_trainer(trainer: str) -> int:
    m = re.match(r"^nnUNetTrainer_(\d+)epochs?$", trainer)
    return int(m[1]) if m else DEFAULT_EPOCHS


def nnunet_command(name: str) -> list[str]:
    """argv prefix for an nnU-Net console script: the script beside our Python, on PATH, or ``python -c``."""
    exe = Path(python_executable())
    for candidate in (exe.parent / name, exe.parent / f"{name}.exe"):
        if candidate.exists():
            return [str(candidate)]
    found = shutil.which(name)
    if found:
        return [found]
    module, func = ENTRY_POINTS[name]
    return [str(exe), "-c", f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; sys.exit({func}())"]


def dataset_info(dataset_dir) -> dict:
    """Id, name, raw root and preprocessed folder of an exported dataset folder."""
    d = Path(dataset_dir).resolve()
    m = _DATASET_DIR.match(d.name)
    if not m or not (d / "dataset.json").exists():
        raise ValueError(f"{d}: not an nnU-Net dataset folder (DatasetXXX_Name with dataset.json)")
    meta = {}
    if (d / "trainbridge.json").exists():
        meta = json.loads((d / "trainbridge.json").read_text(encoding="utf-8"))
    pre = Path(meta["preprocessed_dir"]) if meta.get("preprocessed_dir") else d.parent.parent / "nnUNet_preprocessed"
    return {"id": int(m[1]), "name": m[2], "folder": d.name, "dir": d, "raw_root": d.parent,
            "preprocessed_root": pre, "dataset_json": json.loads((d / "dataset.json").read_text(encoding="utf-8"))}


def build_nnunet_job(dataset_dir, job_dir, *, configuration: str = "3d_fullres", fold: int = 0,
                     epochs: int | None = None, trainer: str | None = None, device: str = "cpu",
                     threads: int | None = None, results_dir=None, disable_tta: bool = True,
                     predict_test: bool = True, spawn=None) -> Job:
    """Create (not start) an nnU-Net job: plan/preprocess, train, predict imagesTs, evaluate."""
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda or mps, got {device!r}")
    info = dataset_info(dataset_dir)
    trainer = trainer or trainer_for_epochs(epochs)
    job_dir = Path(job_dir).resolve()
    results = Path(results_dir).resolve() if results_dir else job_dir / "nnUNet_results"
    # the export wrote splits_final.json beside the raw data too; nnU-Net reads the preprocessed copy
    pre_split = info["preprocessed_root"] / info["folder"] / "splits_final.json"
    raw_split = info["dir"] / "splits_final.json"
    if raw_split.exists() and not pre_split.exists():
        pre_split.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw_split, pre_split)
    did, n = str(info["id"]), str(threads or 1)
    steps = [
        make_step("plan", nnunet_command("nnUNetv2_plan_and_preprocess")
                  + ["-d", did, "-c", configuration, "--verify_dataset_integrity", "-np", n, "-npfp", n]),
        make_step("train", nnunet_command("nnUNetv2_train") + [did, configuration, str(fold), "-tr", trainer,
                                                               "-device", device],
                  resume_argv=nnunet_command("nnUNetv2_train") + [did, configuration, str(fold), "-tr", trainer,
                                                                  "-device", device, "--c"],
                  progress=f"{__name__}:NnunetLogFollower"),
    ]
    has_test = any((info["dir"] / "imagesTs").glob("*.nii.gz"))
    pred_dir, eval_dir = job_dir / "predictions", job_dir / "evaluation"
    if predict_test and has_test:
        steps.append(make_step("predict", nnunet_command("nnUNetv2_predict") + [
            "-i", str(info["dir"] / "imagesTs"), "-o", str(pred_dir), "-d", did, "-c", configuration,
            "-f", str(fold), "-tr", trainer, "-device", device, "-npp", n, "-nps", n]
            + (["--disable_tta"] if disable_tta else [])))
        if any((info["dir"] / "labelsTs").glob("*.nii.gz")):
            steps.append(make_step("evaluate", [python_executable(), "-m", "TrainBridgeLib.evaluation.evaluate",
                                                "--gt", str(info["dir"] / "labelsTs"), "--pred", str(pred_dir),
                                                "--labels", str(info["dir"] / "dataset.json"), "--out", str(eval_dir)]))
    # nnUNet_def_n_proc bounds the worker pools of nnU-Net's final validation and export (default 8: far
    # too many on a workstation that is also running Slicer); torch.compile is off (slow first epoch,
    # and it fails on CPUs without a compiler toolchain)
    env = job_environment({"nnUNet_raw": str(info["raw_root"]), "nnUNet_preprocessed": str(info["preprocessed_root"]),
                           "nnUNet_results": str(results), "nnUNet_def_n_proc": n, "nnUNet_compile": "false"},
                          threads=threads or 1, thread_vars=("nnUNet_n_proc_DA",))
    params = {"dataset": str(info["dir"]), "dataset_id": info["id"], "configuration": configuration, "fold": fold,
              "trainer": trainer, "epochs": epochs_of_trainer(trainer), "device": device, "threads": threads}
    model_dir = results / info["folder"] / f"{trainer}__nnUNetPlans__{configuration}" / f"fold_{fold}"
    outputs = {"model_dir": str(model_dir), "predictions": str(pred_dir), "evaluation": str(eval_dir)}
    return Job.create(job_dir, steps, backend="nnunet", env=env, params=params, outputs=outputs, spawn=spawn)


# ----- log -> progress ------------------------------------------------------------------------------------
_TS = r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: )?"
_PATTERNS = {
    "epoch": re.compile(_TS + r"Epoch (\d+)\s*$"),
    "loss": re.compile(_TS + r"train_loss (\S+)"),
    "val_loss": re.compile(_TS + r"val_loss (\S+)"),
    "dice": re.compile(_TS + r"Pseudo dice \[(.*)\]"),
    "time_s": re.compile(_TS + r"Epoch time: (\S+) s"),
}


def _number(text: str):
    text = text.strip().strip(",")
    inner = re.search(r"\(([^()]*)\)", text)  # "np.float32(0.5)" -> "0.5"
    if inner:
        text = inner[1]
    m = re.search(r"-?\d+(?:\.\d*)?(?:e-?\d+)?|nan", text)
    return float(m[0]) if m and m[0] != "nan" else None


def parse_nnunet_log(text: str, num_epochs: int | None = None, label_names: list | None = None) -> list[dict]:
    """Per-epoch records from nnU-Net's training output (a later attempt's epoch replaces an earlier one)."""
    by_epoch: dict = {}
    cur = None
    for line in text.splitlines():
        line = line.strip()
        m = _PATTERNS["epoch"].match(line)
        if m:
            cur = {"epoch": int(m[1])}
            if num_epochs:
                cur["num_epochs"] = num_epochs
            by_epoch[cur["epoch"]] = cur
            continue
        if cur is None:
            continue
        for key in ("loss", "val_loss", "time_s"):
            m = _PATTERNS[key].match(line)
            if m:
                cur[key] = _number(m[1])
        m = _PATTERNS["dice"].match(line)
        if m:
            # nnU-Net 2.x prints "[np.float32(0.5), ...]" or "[0.5, ...]"
            values = [_number(v) for v in re.split(r",\s*(?![^()]*\))", m[1]) if v.strip()]
            cur["val_dice"] = (sum(v for v in values if v is not None) / max(1, sum(v is not None for v in values))
                               if values else None)
            names = label_names or [f"label_{i}" for i in range(1, len(values) + 1)]
            cur["val_dice_per_label"] = dict(zip(names, values))
    return [by_epoch[e] for e in sorted(by_epoch) if "loss" in by_epoch[e]]


class NnunetLogFollower:
    """Re-parses the job log when it grows; rewrites progress.jsonl and curves.png on change."""

    def __init__(self, job_dir, num_epochs: int | None = None):
        self.dir = Path(job_dir)
        self.log, self.out, self.png = self.dir / LOG_FILE, self.dir / PROGRESS_FILE, self.dir / CURVES_FILE
        self.num_epochs = num_epochs
        self._size = -1
        self._count = -1
        self._last = None
        self.labels = None
        try:
            rec = json.loads((self.dir / JOB_FILE).read_text(encoding="utf-8"))
            meta = json.loads((Path(rec["params"]["dataset"]) / "dataset.json").read_text(encoding="utf-8"))
            self.labels = [n for n, v in sorted(meta["labels"].items(), key=lambda kv: kv[1]) if v != 0]
        except (OSError, KeyError, ValueError):
            pass

    def update(self) -> None:
        try:
            size = self.log.stat().st_size
        except OSError:
            return
        if size == self._size:
            return
        self._size = size
        records = parse_nnunet_log(self.log.read_text(errors="replace", encoding="utf-8"), self.num_epochs, self.labels)
        if records and (len(records) != self._count or records[-1] != self._last):
            self._count, self._last = len(records), records[-1]
            write_records(self.out, records)
            plot_progress(records, self.png, title="nnU-Net")


if __name__ == "__main__":  # debugging aid: python -m TrainBridgeLib.backends.nnunet LOG
    for r in parse_nnunet_log(Path(sys.argv[1]).read_text(encoding="utf-8")):
        print(json.dumps(r))
