"""Throughput of ``deploy.cluster.matte_files`` on a local Dask cluster at 1 and 2 workers.

Each worker is a process with one thread (so 2 workers use the 2 cores); the photos are
copies of the bundled one, written as alpha mattes. Prints a table, writes JSON.

    python benchmarks/cluster_throughput.py --images 40 --json benchmarks/results/cluster_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import date
from importlib import resources
from pathlib import Path


def run(workers: int, photos: list[Path], out: Path, weights: str) -> dict:
    from distributed import Client, LocalCluster

    from modnet_matting.deploy.cluster import matte_files

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        matte_files(photos[:workers], out / "warm", client, weights=weights)  # load and compile on each worker
        start = time.perf_counter()
        results = matte_files(photos, out / str(workers), client, weights=weights)
        seconds = time.perf_counter() - start
    failed = [r for r in results if r.error]
    return {"workers": workers, "images": len(photos), "seconds": round(seconds, 2),
            "images_per_s": round(len(photos) / seconds, 2), "failed": len(failed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--weights", default="modnet-people")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    source = Path(str(resources.files("modnet_matting") / "assets" / "grace_hopper.jpg"))
    work = Path(tempfile.mkdtemp(prefix="modnet-cluster-"))
    photos = []
    for index in range(args.images):
        photos.append(work / "in" / f"photo{index:04d}.jpg")
        photos[-1].parent.mkdir(exist_ok=True)
        shutil.copy(source, photos[-1])
    try:
        rows = [run(workers, photos, work / "out", args.weights) for workers in (1, 2)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'workers':>7} {'images':>6} {'seconds':>8} {'images/s':>9}")
    for row in rows:
        print(f"{row['workers']:7d} {row['images']:6d} {row['seconds']:8.2f} {row['images_per_s']:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"date": date.today().isoformat(), "machine": platform.machine(),
                                         "cpus": os.cpu_count(), "weights": args.weights, "note": args.note,
                                         "photo": f"{source.name} 512x600", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
