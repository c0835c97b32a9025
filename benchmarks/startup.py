"""Start-up time of the ``modnet`` command: how long before it answers, for commands that load no model.

Runs each command in a fresh interpreter (``python -m modnet_matting.cli.main``, so no shell
shim is timed) several times and reports the median and the fastest run. The target is
well under half a second for ``--help``, ``weights list`` and argument errors.

    python benchmarks/startup.py --repeat 5 --json benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date

COMMANDS = {
    "--help": ["--help"],
    "weights list": ["weights", "list"],
    "argument error": ["matte", "--bits", "3", "photo.jpg"],
    "python -c pass (floor)": None,
}


def time_command(argv: list[str] | None, repeat: int) -> list[float]:
    command = [sys.executable, *(["-c", "pass"] if argv is None else ["-m", "modnet_matting.cli.main", *argv])]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False, timeout=120)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    rows = []
    print(f"{'command':<24} {'median s':>9} {'best s':>7}")
    for name, argv in COMMANDS.items():
        times = time_command(argv, args.repeat)
        rows.append({"command": name, "median_s": statistics.median(times), "best_s": min(times)})
        print(f"{name:<24} {statistics.median(times):>9.3f} {min(times):>7.3f}")
    if args.json:
        machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                   "python": platform.python_version(), "load_1min": os.getloadavg()[0]}
        with open(args.json, "w") as handle:
            json.dump({"date": date.today().isoformat(), "machine": machine, "repeat": args.repeat, "rows": rows},
                      handle, indent=2)


if __name__ == "__main__":
    main()
