"""Patient-level data splits: a held-out test set kept out of every fold, then k folds.

Splitting by case or by slice leaks a patient's anatomy between training and evaluation; every
function here works on patients and only then expands them to their cases.  Optional
stratification by a case attribute (site, scanner) keeps each stratum's share roughly equal in
the test set and in every fold.

Hand-written rather than scikit-learn's ``StratifiedGroupKFold`` because the export must work
with the core dependencies only, needs the held-out test set as well, and must be deterministic
across library versions (a split file is a research record).
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from DicomTeamAnnotateLib.core.atomic import write_json_atomic

DEFAULT_FOLDS = 5


@dataclass
class Splits:
    """Which cases are test cases, and the k folds of the remaining (training) cases."""

    test: list[str]
    folds: list[dict]  # [{"train": [case...], "val": [case...]}], nnU-Net's splits_final.json format
    patient_of: dict  # case id -> patient id
    strata: dict = field(default_factory=dict)  # case id -> stratum value (empty when not stratified)
    seed: int = 0

    @property
    def train(self) -> list[str]:
        """All training (non-test) cases, sorted."""
        return sorted(c for c in self.patient_of if c not in set(self.test))

    def fold_of(self, case_id: str) -> int | None:
        """The fold in which ``case_id`` is a validation case (None for test cases)."""
        for k, fold in enumerate(self.folds):
            if case_id in fold["val"]:
                return k
        return None

    def to_dict(self) -> dict:
        return {"seed": self.seed, "test": self.test, "folds": self.folds, "patient_of": self.patient_of,
                "strata": self.strata}

    @classmethod
    def from_dict(cls, d: dict) -> Splits:
        return cls(test=list(d["test"]), folds=[dict(f) for f in d["folds"]], patient_of=dict(d["patient_of"]),
                   strata=dict(d.get("strata") or {}), seed=int(d.get("seed", 0)))


def _patient_stratum(cases: list[str], strata: dict) -> str:
    """The stratum of a patient: the most common value among its cases (ties: smallest value)."""
    counts = Counter(str(strata.get(c, "")) for c in cases)
    best = max(counts.values())
    return min(v for v, n in counts.items() if n == best)


def _allocate(total: int, sizes: dict) -> dict:
    """Split ``total`` across groups proportionally to ``sizes`` (largest remainder method)."""
    whole = sum(sizes.values())
    if whole == 0:
        return {g: 0 for g in sizes}
    exact = {g: total * n / whole for g, n in sizes.items()}
    out = {g: int(v) for g, v in exact.items()}
    left = total - sum(out.values())
    for g in sorted(exact, key=lambda g: (-(exact[g] - out[g]), g))[:left]:
        out[g] += 1
    return out


def make_splits(patient_of: dict, *, test_fraction: float = 0.2, folds: int = DEFAULT_FOLDS, seed: int = 0,
                strata: dict | None = None, test_cases: list | None = None) -> Splits:
    """Split cases by patient into a test set and ``folds`` folds (fewer when there are fewer patients).

    ``patient_of`` maps case id -> patient id.  ``strata`` maps case id -> attribute value to
    stratify by.  ``test_cases`` forces a test set (all cases of their patients go to test).
    """
    if not patient_of:
        raise ValueError("no cases to split")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    strata = {c: str(v) for c, v in (strata or {}).items()}
    missing = sorted(c for c in patient_of if strata and c not in strata)
    if missing:
        raise ValueError(f"stratification attribute missing for case(s): {', '.join(missing[:10])}")
    cases_of: dict = defaultdict(list)
    for case, patient in patient_of.items():
        if patient is None or str(patient) == "":
            raise ValueError(f"case '{case}': patient id is empty (splits are made by patient)")
        cases_of[str(patient)].append(case)
    rng = random.Random(seed)
    patients = sorted(cases_of)
    rng.shuffle(patients)
    stratum = {p: _patient_stratum(cases_of[p], strata) for p in patients}
    by_stratum: dict = defaultdict(list)
    for p in patients:
        by_stratum[stratum[p]].append(p)

    # ----- held-out test set ---------------------------------------------------------------------
    if test_cases is not None:
        unknown = sorted(set(test_cases) - set(patient_of))
        if unknown:
            raise ValueError(f"test case(s) not among the cases: {', '.join(unknown[:10])}")
        test_patients = {str(patient_of[c]) for c in test_cases}
    else:
        n_test = round(test_fraction * len(patients))
        if test_fraction > 0 and n_test == 0 and len(patients) >= 3:
            n_test = 1  # a requested test set is never silently empty
        n_test = min(n_test, max(0, len(patients) - 2))  # keep two patients for train/val
        quota = _allocate(n_test, {s: len(ps) for s, ps in by_stratum.items()})
        test_patients = {p for s, ps in by_stratum.items() for p in ps[:quota[s]]}
    train_patients = [p for p in patients if p not in test_patients]

    # ----- k folds of the training patients ------------------------------------------------------
    k = min(folds, len(train_patients))
    if k < 2 and folds >= 2:
        raise ValueError(f"need at least 2 training patients for cross-validation, have {len(train_patients)} "
                         f"({len(test_patients)} patient(s) held out for test)")
    fold_patients: list = [[] for _ in range(k)]
    fold_cases = [0] * k
    for s in sorted({stratum[p] for p in train_patients}):
        in_s = [p for p in train_patients if stratum[p] == s]
        # biggest patients first, each to the fold with the fewest cases of this stratum, then overall
        in_s.sort(key=lambda p: -len(cases_of[p]))
        per_fold = [0] * k
        for p in in_s:
            f = min(range(k), key=lambda i: (per_fold[i], fold_cases[i], i))
            fold_patients[f].append(p)
            per_fold[f] += len(cases_of[p])
            fold_cases[f] += len(cases_of[p])
    train_cases = sorted(c for p in train_patients for c in cases_of[p])
    out_folds = []
    for f in range(k):
        val = sorted(c for p in fold_patients[f] for c in cases_of[p])
        train = train_cases if k == 1 else [c for c in train_cases if c not in set(val)]
        out_folds.append({"train": train, "val": val})
    test = sorted(c for p in test_patients for c in cases_of[p])
    return Splits(test=test, folds=out_folds, patient_of={c: str(p) for c, p in patient_of.items()},
                  strata=strata, seed=seed)


def extend_splits(previous: Splits, patient_of: dict, *, test_fraction: float = 0.2, seed: int = 0,
                  strata: dict | None = None) -> Splits:
    """The splits of a grown dataset that keep every earlier case where it was (retraining in the loop).

    A patient of ``previous`` keeps their place: test patients stay in the test set (a model is
    never trained on what the earlier one was tested on), a training patient stays in the fold
    that validates on them.  Patients new to the dataset are split among themselves as
    ``make_splits`` splits (``test_fraction`` of them held out), then each new training patient
    joins the fold with the fewest cases.  Cases no longer in ``patient_of`` are dropped.
    """
    if not patient_of:
        raise ValueError("no cases to split")
    old_patient_of = {c: str(p) for c, p in previous.patient_of.items()}
    test_patients = {old_patient_of[c] for c in previous.test}
    fold_of_patient = {}
    for k, fold in enumerate(previous.folds):
        for c in fold["val"]:
            fold_of_patient[old_patient_of[c]] = k
    k = max(1, len(previous.folds))
    new = {c: p for c, p in patient_of.items() if str(p) not in test_patients and str(p) not in fold_of_patient}
    if new:
        # the new patients alone, as make_splits would split them (one fold: just the test choice)
        fresh = make_splits(new, test_fraction=test_fraction, folds=1, seed=seed,
                            strata={c: (strata or {}).get(c, "") for c in new} if strata else None)
        test_patients |= {str(new[c]) for c in fresh.test}
    cases_of: dict = defaultdict(list)
    for case, patient in patient_of.items():
        cases_of[str(patient)].append(case)
    sizes = [0] * k
    for p, f in fold_of_patient.items():
        sizes[f] += len(cases_of.get(p, []))
    for p in sorted(cases_of):  # new training patients, each to the fold with the fewest cases
        if p not in test_patients and p not in fold_of_patient:
            f = min(range(k), key=lambda i: (sizes[i], i))
            fold_of_patient[p] = f
            sizes[f] += len(cases_of[p])
    train_cases = sorted(c for p, cs in cases_of.items() if p not in test_patients for c in cs)
    folds = []
    for f in range(k):
        val = sorted(c for c in train_cases if fold_of_patient[str(patient_of[c])] == f)
        folds.append({"train": train_cases if k == 1 else [c for c in train_cases if c not in set(val)], "val": val})
    test = sorted(c for p, cs in cases_of.items() if p in test_patients for c in cs)
    return Splits(test=test, folds=folds, patient_of={c: str(p) for c, p in patient_of.items()},
                  strata={c: str(v) for c, v in (strata or {}).items()}, seed=previous.seed)


def check_splits(splits: Splits) -> list[str]:
    """Problems with a split (empty list when sound): leakage of a patient, a test case in a fold..."""
    problems = []
    test = set(splits.test)
    test_patients = {splits.patient_of[c] for c in test}
    for k, fold in enumerate(splits.folds):
        tr, va = set(fold["train"]), set(fold["val"])
        for c in sorted((tr | va) & test):
            problems.append(f"fold {k}: test case '{c}' is used for training/validation")
        if not va:
            problems.append(f"fold {k}: no validation case")
        if not tr:
            problems.append(f"fold {k}: no training case")
        if len(splits.folds) > 1:
            for c in sorted(tr & va):
                problems.append(f"fold {k}: case '{c}' is in both train and val")
        tr_p = {splits.patient_of[c] for c in tr}
        va_p = {splits.patient_of[c] for c in va}
        if len(splits.folds) > 1:
            for p in sorted(tr_p & va_p):
                problems.append(f"fold {k}: patient '{p}' is in both train and val")
        for p in sorted((tr_p | va_p) & test_patients):
            problems.append(f"fold {k}: patient '{p}' is also in the test set")
    return problems


def write_splits_final(splits: Splits, folder) -> Path:
    """Write nnU-Net's ``splits_final.json`` (list of {"train", "val"}) into ``folder``."""
    path = Path(folder) / "splits_final.json"
    write_json_atomic(path, [{"train": f["train"], "val": f["val"]} for f in splits.folds])
    return path


def read_splits_final(path) -> list[dict]:
    """Read a ``splits_final.json``; raise ValueError naming the file when malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read splits ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(f, dict) and "train" in f and "val" in f for f in data):
        raise ValueError(f"{path}: expected a list of {{'train': [...], 'val': [...]}} folds")
    return data
