"""How fast the QD archive is: building one (imports included) and offering it results.

    python benchmarks/archive_speed.py [--adds 10000] [--solution-dim 14]

Prints, for a 10 x 10 grid archive and a 64-cell CVT archive over two descriptors in [0, 1] (each in a fresh
process, so import costs are counted once, as a campaign, ``ctmevo status`` or a resume pays them):

- ``build``: the time to construct the first archive, imports it triggers included (for CVT: the k-means
  that makes its centroids, 20,000 samples);
- ``add``: the time of ``--adds`` single ``QDArchive.add`` calls, random solutions, fitness and descriptor
  values (10 % of them outside the descriptor range, so border clipping is exercised), seeded.

Runs in a few seconds on one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from search.archive import QDArchive
from search.descriptors import Descriptor
kind, adds, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ds = [Descriptor(name=f"d{i}", label=f"d{i}", low=0.0, high=1.0, bins=10, fn=lambda g, r: 0.0) for i in range(2)]
archive = QDArchive(descriptors=ds, solution_dim=dim, kind=kind, cells=64, seed=0)
archive.cells  # a CVT archive may make its centroids on first use: count them in build
archive.index_of([0.5, 0.5])
t1 = time.perf_counter()
rng = np.random.default_rng(0)
solutions = rng.random((adds, dim))
fitness = rng.random(adds).tolist()
values = rng.uniform(-0.05, 1.05, size=(adds, 2)).tolist()
hashes = [f"g{i}" for i in range(adds)]
t2 = time.perf_counter()
for h, s, f, v in zip(hashes, solutions, fitness, values):
    archive.add(h, s, f, v)
t3 = time.perf_counter()
print(json.dumps({"build_s": t1 - t0, "add_s": t3 - t2, "elites": len(archive)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=10_000)
    parser.add_argument("--solution-dim", type=int, default=14)
    args = parser.parse_args()
    for kind in ("grid", "cvt"):
        out = subprocess.run([sys.executable, "-c", CHILD, kind, str(args.adds), str(args.solution_dim)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{kind:4s}  build {r['build_s']:6.3f} s   {args.adds} adds {r['add_s']:6.3f} s "
              f"({1e6 * r['add_s'] / args.adds:6.1f} µs each)   elites {r['elites']}")


if __name__ == "__main__":
    main()
