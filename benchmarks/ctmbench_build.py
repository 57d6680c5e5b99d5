"""Grow CTM-Bench's learning-curve data (see ctm/bench/DATA_CARD.md).

    python benchmarks/ctmbench_build.py --indices 0:100 --workers 2            # both tasks, 2 seeds, CPU
    python benchmarks/ctmbench_build.py --indices 400:1000 --workers 16 --device cuda --minutes 8
    python benchmarks/ctmbench_build.py --pack                                 # merge into the shipped files

Stopped at any moment, the same command carries on; machines that build disjoint --indices grow one table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctm.bench.build import DATA_DIR, build, pack
from ctm.bench.space import TASKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS), help=f"bench tasks (of {sorted(TASKS)})")
    parser.add_argument("--indices", default="0:100", help="genome indices START:STOP (default 0:100)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per genome (default 2)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (fp32 either way)")
    parser.add_argument("--minutes", type=float, default=None, help="stop submitting after this many minutes")
    parser.add_argument("--name", default=None, help="name of this build's raw journal (default: host name)")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help=f"data directory (default {DATA_DIR})")
    parser.add_argument("--pack", action="store_true", help="only merge the raw journals into <task>.jsonl.gz")
    args = parser.parse_args()
    if args.pack:
        for key, n in pack(args.data).items():
            print(f"{key}: {n} curves")
        return 0
    try:
        start, stop = (int(x) for x in args.indices.split(":"))
        for key in args.tasks:
            if key not in TASKS:
                raise ValueError(f"--tasks {key!r}: allowed is one of {sorted(TASKS)}")
    except ValueError as exc:
        print(f"ctmevo-bench: {exc}", file=sys.stderr)
        return 2
    build(tasks=args.tasks, indices=range(start, stop), seeds=args.seeds, workers=args.workers, device=args.device,
          name=args.name, data_dir=args.data, stop_after_s=None if args.minutes is None else 60 * args.minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
