"""Plot validation IoU and MAD of a training run against samples seen and CPU hours; or compare runs.

    python benchmarks/learning_curve.py runs/cpu_people/val_log.csv -o docs/learning_curve.png
    python benchmarks/learning_curve.py deeplab=runs/ab_deeplab/val_log.csv imagenet=runs/ab_imagenet/val_log.csv \
        -o docs/ab_curves.png        (A/B arms: IoU of each run on one plot, one table row per run)

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


def plot_runs(runs: dict[str, list[dict[str, float]]], out: Path) -> None:
    """Validation IoU of several runs against samples seen and CPU hours."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, rows in runs.items():
        axes[0].plot([r["samples"] / 1000 for r in rows], [r["iou"] for r in rows], "o-", label=name)
        axes[1].plot([r["hours"] for r in rows], [r["iou"] for r in rows], "o-", label=name)
    for ax, label in ((axes[0], "samples seen (thousands)"), (axes[1], "CPU hours (2 cores)")):
        ax.set_xlabel(label)
        ax.set_ylabel("validation IoU")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def compare_markdown(runs: dict[str, list[dict[str, float]]]) -> str:
    """One row per run: IoU at every validated step, then the last row's MAD, distractor MAD and CPU hours."""
    steps = sorted({int(r["step"]) for rows in runs.values() for r in rows})
    head = "| run | " + " | ".join(f"IoU @{s}" for s in steps) + " | MAD | distractor MAD | distractor FF | CPU h |"
    lines = [head, "|" + "---|" * (len(steps) + 5)]
    for name, rows in runs.items():
        at = {int(r["step"]): r for r in rows}
        last = rows[-1]
        cells = [name] + [f"{at[s]['iou']:.4f}" if s in at else "-" for s in steps]
        cells += [f"{last[k]:.4f}" if k in last else "-" for k in ("mad", "mad_distractors", "ff_distractors")]
        cells.append(f"{last['hours']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    parser.add_argument("logs", nargs="+", help="val_log.csv, or NAME=val_log.csv for each run to compare")
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/learning_curve.png"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--until", type=int, default=None, help="only rows up to this step (arms of equal length)")
    args = parser.parse_args()
    runs = {}
    for item in args.logs:
        name, _, path = item.rpartition("=")
        rows = [r for r in read_log(Path(path)) if args.until is None or r["step"] <= args.until]
        if not rows:
            raise SystemExit(f"{path}: no validation rows yet")
        runs[name or Path(path).parent.name] = rows
    single = next(iter(runs.values())) if len(runs) == 1 and "=" not in args.logs[0] else None
    if single:
        plot(single, args.out)
        print(markdown(single))
    else:
        plot_runs(runs, args.out)
        print(compare_markdown(runs))
    if args.json:
        args.json.write_text(json.dumps(single or runs, indent=1))


if __name__ == "__main__":
    main()
