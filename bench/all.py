"""`make bench`: every benchmark in one run, then BENCHMARKS.md from that run alone.

Each script runs in a process of its own (their peak memory figures are their own),
one after the other (figures taken while another benchmark runs mean nothing), under
one run id that each writes into its results file; the page then says that all its
figures come from this run, on this machine, started at this time.

    python bench/all.py [--skip archive]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = {"scale": "scale_bars.py", "core": "run.py", "edge": "edge_eval.py", "reports": "report_bench.py",
           "archive": "archive_bench.py"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(SCRIPTS),
                        help="parts not run (the page then names the older run they come from)")
    args = parser.parse_args()
    run = time.strftime("%Y%m%d-%H%M%S")
    env = dict(os.environ, PSDWATCH_BENCH_RUN=run)
    started = time.monotonic()
    for part, script in SCRIPTS.items():
        if part in args.skip:
            continue
        print(f"[bench {run}] {script} ({time.monotonic() - started:.0f} s in) ...", flush=True)
        subprocess.run([sys.executable, str(BENCH / script)], check=True, env=env)
    sys.path.insert(0, str(BENCH))
    from benchmarks_page import write_benchmarks

    write_benchmarks()
    print(f"[bench {run}] BENCHMARKS.md written after {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
