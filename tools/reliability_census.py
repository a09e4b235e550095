"""Run the catalogue of bad inputs (tests/bad_inputs.py) against the installed kcnn.

    python tools/reliability_census.py [--only NAME,...] [--json OUT]

Prints one row per class (handled, or failed and why) and the counts per point of issue 13.
Run it with PYTHONPATH set to another kcnn (e.g. an older release installed with
``pip install --target``) to count that one instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bad_inputs import CASES, run_case  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated class names")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for case in CASES:
            if wanted and case.name not in wanted:
                continue
            start = time.monotonic()
            failure, said = run_case(case, Path(root) / case.name)
            seconds = time.monotonic() - start
            rows.append(
                {
                    "name": case.name,
                    "point": case.point,
                    "what": case.what,
                    "handled": failure is None,
                    "why": failure,
                    "said": said,
                    "seconds": seconds,
                }
            )
            mark = "handled" if failure is None else f"FAILED  {failure}"
            print(f"{case.point}  {case.name:<30} {seconds:6.1f}s  {mark}", flush=True)
    points = sorted({row["point"] for row in rows})
    for point in points:
        of = [row for row in rows if row["point"] == point]
        print(
            f"point {point}: {sum(r['handled'] for r in of)} handled, "
            f"{sum(not r['handled'] for r in of)} failed"
        )
    print(
        f"total: {sum(r['handled'] for r in rows)} handled, "
        f"{sum(not r['handled'] for r in rows)} failed of {len(rows)} classes"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
