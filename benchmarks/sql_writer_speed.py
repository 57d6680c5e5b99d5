"""How fast ctmevo's batched SQL writer puts evaluation runs into MLflow's tables (sqlite and PostgreSQL).

    python benchmarks/sql_writer_speed.py [--batches 20] [--batch 200] [--postgres]

Writes ``--batches`` batches of ``--batch`` synthetic runs shaped like an evaluation's (20 params, 14 tags, 16
metrics: the rows a campaign's MLflow consumer sends per result) through :class:`search.tracking.writers.SqlWriter`
into a fresh store: a sqlite file, and with ``--postgres`` also a throwaway PostgreSQL server on loopback (Debian's
``postgresql`` and the ``postgres`` extra, as ``make e2e``). Prints runs per second of writing (the store's
creation not counted) for each. The MLflow consumer keeps up with a campaign while this rate is above the
campaign's evaluations per second (``benchmarks/campaign_scale.py`` measures the lag itself).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(uri: str, artifacts: Path, batches: int, size: int) -> float:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from search.tracking.writers import RunWrite, SqlWriter, make_writer

    client = MlflowClient(uri)
    experiment = client.create_experiment("sql-writer-speed", artifact_location=str(artifacts))
    writer = make_writer(client, uri)
    assert isinstance(writer, SqlWriter), f"{uri}: not a SQL store"
    spent = 0.0
    for b in range(batches):
        now = int(time.time() * 1000)
        runs = [RunWrite(run_id=writer.new_run_id(experiment, f"r{b}-{i}", now, {}), new=True,
                         run_name=f"r{b}-{i}", start_ms=now, end_ms=now, status="FINISHED",
                         tags={f"ctmevo.tag{j}": f"value {j} of {i}" for j in range(14)},
                         params={f"gene{j}": str(i * j % 97) for j in range(20)},
                         metrics=[Metric(f"metric{j}", float(i + j), now, 0) for j in range(16)])
                for i in range(size)]
        started = time.perf_counter()
        writer.write(runs, experiment)
        spent += time.perf_counter() - started
    return batches * size / spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200, help="runs per batch")
    parser.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL server on loopback")
    args = parser.parse_args()
    if args.batches < 1 or args.batch < 1:
        print(f"sql_writer_speed: --batches {args.batches} / --batch {args.batch}: allowed are whole numbers >= 1",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ctmevo-sqlw-") as tmp:
        rate = measure(f"sqlite:///{tmp}/mlflow.db", Path(tmp) / "a", args.batches, args.batch)
        print(f"sqlite:     {args.batches * args.batch} runs, {rate:.0f} runs/s")
        if args.postgres:
            from tests.e2e.postgres import Postgres, postgres_binaries
            if postgres_binaries() is None:
                print("sql_writer_speed: --postgres needs Debian's postgresql (apt-get install -y postgresql) and "
                      "the postgres extra (make postgres-install)", file=sys.stderr)
                return 2
            server = Postgres().start()
            try:
                rate = measure(server.uri, Path(tmp) / "b", args.batches, args.batch)
                print(f"PostgreSQL: {args.batches * args.batch} runs, {rate:.0f} runs/s")
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
