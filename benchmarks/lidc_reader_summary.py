"""Per-reader STAPLE summary over every LIDC nodule in ../shared/data/lidc_multirater.

Prints mean sensitivity / specificity / Dice vs the STAPLE consensus per reader slot and writes
the full table as JSON.

    .venv/bin/python benchmarks/lidc_reader_summary.py [--data DIR] [--out lidc_summary.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from ConsensusReviewLib.agreement import to_json_safe
    from ConsensusReviewLib.lidc import format_reader_summary, reader_summary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "lidc_multirater"))
    ap.add_argument("--out", default="lidc_summary.json")
    args = ap.parse_args(argv)
    summary = reader_summary(args.data)
    Path(args.out).write_text(json.dumps(to_json_safe(summary), indent=1), encoding="utf-8")
    print(format_reader_summary(summary))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
