"""A campaign of many no-op evaluations, measured as it grows: does anything get slower or bigger per evaluation?

    python benchmarks/campaign_scale.py [--n 100000] [--workdir DIR] [--postgres]   # resumable: run it again

``--postgres``: the campaign's MLflow store is a PostgreSQL database instead of sqlite (Debian's ``postgresql``
package and the ``postgres`` extra; a throwaway server on 127.0.0.1 whose data stays in the workdir, started and
stopped by this script), written directly by the campaign's SQL writer as ``tracking.uri: postgresql://…``.

Runs ``ctmevo run`` (MAP-Elites, embedded Ray with 2 CPUs, the no-op evaluation, MLflow on the campaign's sqlite
store) in ``--workdir`` (default ``benchmarks/work/scale-N``); if a campaign is already there, ``ctmevo resume``
carries it on (a stopped benchmark continues where it stopped). While it runs, the driver's resident memory is
sampled every second (kept in ``WORKDIR/samples.jsonl`` with the MLflow lags, across stops). Then it prints
(with ``--at K``, the first three also over the first K results: a million-evaluation run gives the 100,000 figures):

- evaluations/s by tenth of the results (from the journal's times) and last/first;
- the driver's resident memory at each tenth (the process that ran that tenth) and its peak, and the same of the
  process that runs MLflow and the pictures beside it (``tracking.consumers``: a process above 10,000 evaluations);
- the largest MLflow lag the progress lines showed, the lag at the end of dispatch and the time to catch up;
- the store: database and artifacts, bytes per evaluation, and the runs-table query (the 100 best by
  ``rank_score`` among the campaign's evaluation runs, in-process on sqlite);
- the time of ``ctmevo status``, ``ctmevo lineage`` (of the best genome), and ``ctmevo resume`` of the finished
  campaign (its time to say the budget is spent: read from the index), and of restoring the campaign
  (``Campaign.open``: what a resume with budget left does before its first dispatch).

Targets (issue 25; 100,000 evaluations, 2 cores): rate last/first >= 0.9; peak RSS <= 1 GB and flat from 10,000;
status <= 1 s, resume <= 5 s, lineage <= 1 s; store <= 2 KB per evaluation; lag <= 1,000; query <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_throughput import CAMPAIGN, ROOT, env, store_figures, timed

LAG = re.compile(r"MLflow: ([\d,]+) record\(s\) behind")


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _sidecar_pid(parent: int) -> int | None:
    """The consumers' process the driver started (``tracking.consumers``: process), if any."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent
                        and b"search.campaign.sidecar" in (entry / "cmdline").read_bytes()):
                    return int(entry.name)
            except (OSError, IndexError, ValueError):
                continue
    return None


def _results(journal: Path) -> int:
    with journal.open("rb") as fh:
        return sum(line.startswith(b'{"event":"result"') for line in fh)


def run(directory: Path, config: Path, log: Path, *, cwd: Path = ROOT) -> int:
    """``ctmevo run`` (or ``resume``) with its memory sampled every second, appended to ``log`` as JSON lines
    ``{"offset", "rss", "side"}`` (journal bytes so far, the driver's RSS MiB, the consumers' process's RSS MiB),
    and each MLflow lag its progress lines show as ``{"offset", "lag"}``: kept across a stopped benchmark."""
    args = ["resume", str(directory)] if (directory / "campaign.json").exists() else ["run", str(config), "--fresh"]
    print(f"ctmevo {' '.join(args)}", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env(), cwd=cwd)
    done = threading.Event()
    journal = directory / "journal.jsonl"
    out = log.open("a")
    lock = threading.Lock()

    def offset() -> int:
        return journal.stat().st_size if journal.exists() else 0

    def write(row: dict) -> None:
        with lock:
            out.write(json.dumps(row) + "\n")
            out.flush()

    def sample() -> None:
        sidecar = None
        while not done.wait(1.0):
            sidecar = sidecar or _sidecar_pid(proc.pid)
            write({"offset": offset(), "rss": _rss_mib(proc.pid), "side": _rss_mib(sidecar) if sidecar else 0.0})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    last = 0.0
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := LAG.search(line):
            write({"offset": offset(), "lag": int(m.group(1).replace(",", ""))})
        if time.monotonic() - last > 30:  # a line every half minute in this script's own log
            last = time.monotonic()
            print("  " + line.strip()[:160], flush=True)
    code = proc.wait()
    done.set()
    sampler.join()
    out.close()
    return code


def _results_read(journal: Path) -> tuple[list[float], list[int]]:
    """Every result's finish time and the journal's size just after its line."""
    ends, offsets, at = [], [], 0
    with journal.open("rb") as fh:
        for line in fh:
            at += len(line)
            if line.startswith(b'{"event":"result"'):
                ends.append(json.loads(line)["record"]["finished_at"])
                offsets.append(at)
    return ends, offsets


def report(ends: list[float], offsets: list[int], log: list[dict], k: int) -> None:
    """Rate, memory and lag over the first ``k`` results, by tenth."""
    tenth = max(1, k // 10)
    rates = [tenth / max(1e-9, ends[min(k - 1, (i + 1) * tenth - 1)] - ends[i * tenth]) for i in range(10)]
    print("  evaluations/s by tenth: " + " ".join(f"{r:,.0f}" for r in rates)
          + f"  (last/first {rates[-1] / rates[0]:.2f}; target >= 0.9)")
    samples = [row for row in log if "rss" in row and row["offset"] <= offsets[k - 1]]
    if not samples:
        print("  driver RSS: not sampled (the campaign was finished before; delete the workdir to measure it)")
        return
    rss, side = [], []
    for i in range(10):  # the memory when the journal held each tenth of the results
        at = [row for row in samples if row["offset"] <= offsets[min(k, (i + 1) * tenth) - 1]]
        rss.append(max((row["rss"] for row in at), default=float("nan")))
        side.append(max((row["side"] for row in at), default=float("nan")))
    print("  driver RSS (MiB) by tenth: " + " ".join(f"{r:,.0f}" for r in rss)
          + f"  (peak {max(row['rss'] for row in samples):,.0f}; target <= 1,024 and flat from 10,000)")
    if max(row["side"] for row in samples) > 0:
        print("  consumers' process RSS (MiB) by tenth: " + " ".join(f"{r:,.0f}" for r in side)
              + f"  (peak {max(row['side'] for row in samples):,.0f})")
    lags = [row["lag"] for row in log if "lag" in row and row["offset"] <= offsets[k - 1]]
    print(f"  MLflow lag: largest seen {max(lags, default=0):,} record(s)  (target <= 1,000)")


def _restore_s(directory: Path) -> float:
    """Seconds ``Campaign.open`` takes in a fresh process (imports excluded): the snapshot and the journal's replay."""
    code = ("import sys, time; from search.campaign.loop import Campaign; t = time.perf_counter(); "
            "Campaign.open(sys.argv[1]); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code, str(directory)], capture_output=True, text=True, env=env(),
                         cwd=ROOT, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="no-op evaluations (default 100,000)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: benchmarks/work/scale-N[-postgres]")
    parser.add_argument("--postgres", action="store_true", help="MLflow's store on PostgreSQL instead of sqlite")
    parser.add_argument("--at", type=int, default=None, metavar="K",
                        help="also the rate, memory and lag over the first K results (e.g. 100000 of a million)")
    args = parser.parse_args()
    name = f"scale-{args.n}" + ("-postgres" if args.postgres else "")
    workdir = (args.workdir or ROOT / "benchmarks" / "work" / name).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    directory, config = workdir / "campaign", workdir / "scale.yaml"
    text = CAMPAIGN.format(directory=directory, strategy="map_elites", evaluations=args.n, descriptors=(
        "[{name: ticks, bins: 8, range: [1, 17]}, {name: memory_length, bins: 8, range: [1, 9]}]"))
    postgres = None
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.e2e.postgres import Postgres, postgres_binaries

        if postgres_binaries() is None:
            sys.exit("--postgres needs PostgreSQL's server (Debian: apt-get install -y postgresql)")
        postgres = Postgres(workdir / "postgres").start()
        text += f"tracking: {{uri: '{postgres.uri}'}}\n"
    config.write_text(text)
    try:
        measure(args.n, workdir, directory, config, postgres.uri if postgres else None, args.at)
    finally:
        if postgres is not None:
            postgres.stop()


def measure(n_wanted: int, workdir: Path, directory: Path, config: Path, uri: str | None, at: int | None) -> None:
    journal, log_path = directory / "journal.jsonl", workdir / "samples.jsonl"
    if not journal.exists() or _results(journal) < n_wanted:
        code = run(directory, config, log_path, cwd=workdir)  # a database store's artifacts: ./mlruns there
        if code != 0:
            sys.exit(f"ctmevo stopped with exit {code}; run this script again to carry on")
    ends, offsets = _results_read(journal)
    log = [json.loads(line) for line in log_path.open()] if log_path.exists() else []
    n = len(ends)
    if at and at < n:
        print(f"\nthe first {at:,} of them")
        report(ends, offsets, log, at)
    finish = json.loads((directory / "consumers" / "finish.json").read_text())
    status_s, status = timed("status", str(directory))
    best = next((line.split()[0] for line in status.stdout.splitlines() if re.match(r"^\s+[0-9a-f]{16}\s", line)), "")
    lineage_s, _ = timed("lineage", best, "--campaign", str(directory))
    resume_s, _ = timed("resume", str(directory))
    restore_s = _restore_s(directory)
    print(f"\n{n:,} no-op evaluations in {directory}")
    report(ends, offsets, log, n)
    print(f"  MLflow at the end of dispatch: {finish['mlflow_behind_at_end']:,} record(s) behind, caught up "
          f"{finish['drain_s']:.1f} s later, left unsent {finish['mlflow_left']}")
    print(f"  store: {store_figures(directory, n, uri, workdir / 'mlruns' if uri else None)}")
    print(f"  ctmevo status {status_s:.2f} s, lineage {lineage_s:.2f} s, resume (budget spent) {resume_s:.2f} s  "
          "(targets 1 / 1 / 5 s)")
    print(f"  restoring the campaign (what a resume with budget left does before its first dispatch, Ray's start "
          f"aside) {restore_s:.2f} s")


if __name__ == "__main__":
    main()
