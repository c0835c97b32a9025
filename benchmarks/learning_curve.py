"""Plot validation IoU and MAD of a training run against samples seen and CPU hours.

    python benchmarks/learning_curve.py runs/cpu_people/val_log.csv -o docs/learning_curve.png

Also prints the table as Markdown (for docs/model_card.md) and writes it as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def plot(rows: list[dict[str, float]], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    samples = [r["samples"] / 1000 for r in rows]
    hours = [r["hours"] for r in rows]
    for ax, x, label in ((axes[0], samples, "samples seen (thousands)"), (axes[1], hours, "CPU hours (2 cores)")):
        ax.plot(x, [r["iou"] for r in rows], "o-", color="tab:blue", label="IoU (alpha >= 0.5)")
        ax.set_xlabel(label)
        ax.set_ylabel("validation IoU", color="tab:blue")
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        twin.plot(x, [r["mad"] for r in rows], "s--", color="tab:red", label="MAD")
        twin.set_ylabel("validation MAD", color="tab:red")
    fig.suptitle("MODNet trained from scratch on a 2-core CPU: held-out people photos (EMA weights)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def markdown(rows: list[dict[str, float]]) -> str:
    sets = sorted(k[4:] for k in rows[0] if k.startswith("iou_"))
    head = "| step | samples | CPU h | " + " | ".join(f"IoU {s}" for s in sets) + " | mean IoU | mean MAD |"
    lines = [head, "|" + "---|" * (5 + len(sets))]
    for r in rows:
        cells = [f"{int(r['step'])}", f"{int(r['samples'])}", f"{r['hours']:.2f}"]
        cells += [f"{r.get('iou_' + s, float('nan')):.3f}" for s in sets]
        cells += [f"{r['iou']:.3f}", f"{r['mad']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/learning_curve.png"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = read_log(args.log)
    if not rows:
        raise SystemExit(f"{args.log}: no validation rows yet")
    plot(rows, args.out)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
