"""Reports of an evaluation: the table of means, per-image CSVs, the worst cases' contact sheet, summary.json.

Written from ``runner.evaluate``'s results; every file goes through ``io.atomic_write``,
so an interrupted report never leaves half a CSV behind.
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..io import atomic_write, save_image
from .runner import LABELS, Case, Dataset, MethodResult, safe_name


def contact_sheet(cases: Sequence[Case], primary: str) -> np.ndarray | None:
    """Rows of image | reference | prediction | |error| (inferno colour map), worst first."""
    if not cases:
        return None
    rows = []
    for case in cases:
        grey = [np.repeat((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
                for a in (case.ref, case.pred)]
        error = (np.clip(np.abs(case.pred - case.ref), 0, 1) * 255 + 0.5).astype(np.uint8)
        heat = cv2.applyColorMap(error, cv2.COLORMAP_INFERNO)[..., ::-1]
        tiles = [case.image, *grey, heat]
        row = np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1)
        label = f"{case.row.stem} {LABELS.get(primary.removesuffix('_u'), primary)}={case.row.values[primary]:.4f}"
        cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = np.full((20, width, 3), 255, np.uint8)
    x = 0
    for title, tile in zip(("image", "reference", "prediction", "|error|"), (cases[0].image,) * 4):
        cv2.putText(header, title, (x + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += tile.shape[1] + 4
    return np.concatenate([header, *rows], axis=0)


def _fmt(name: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name == "ms":
        return f"{value:.1f}"
    return f"{value:.4f}" if name in ("iou", "boundary_f") or abs(value) >= 0.01 else f"{value:.5f}"


def format_table(results: Sequence[MethodResult], title: str) -> str:
    """Plain-text table of means per method, conventions in the header lines."""
    if not results:
        return f"# {title}\n(no method produced results)"
    conv = results[0].conv
    names = conv.metric_names() + ["ms"]
    headers = ["method", "n"] + [LABELS.get(n.removesuffix("_u"), n) + ("[u]" if n.endswith("_u") else "")
                                 for n in names]
    body = []
    for result in results:
        means = result.means()
        body.append([result.method, str(len(result.rows))] + [_fmt(n, means[n]) if means else "-" for n in names])
    widths = [max(len(r[i]) for r in [headers] + body) for i in range(len(headers))]
    lines = [f"# {title}"] + [f"#   {key}: {value}" for key, value in conv.describe().items()]
    lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    for row in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def write_reports(
    out: Path, dataset: Dataset, results: Sequence[MethodResult], worst: dict[str, list[Case]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per method: ``per_image.csv`` and ``worst.png``; overall ``summary.json`` (returned)."""
    summary: dict[str, Any] = {
        "dataset": {"root": str(dataset.root), "kind": dataset.kind, "samples": len(dataset.samples)},
        "conventions": results[0].conv.describe() if results else {},
        "methods": {},
        "problems": list(dataset.problems),
        **(extra or {}),
    }
    for result in results:
        folder = out / safe_name(result.method)
        names = result.conv.metric_names()
        buffer = _io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["stem", *names, "ms"])
        for row in result.rows:
            writer.writerow([row.stem, *[f"{row.values[n]:.8g}" for n in names], f"{row.ms:.2f}"])
        atomic_write(folder / "per_image.csv", buffer.getvalue().encode())
        sheet = contact_sheet(worst.get(result.method, []), result.primary())
        if sheet is not None:
            save_image(folder / "worst.png", sheet)
        summary["methods"][result.method] = {
            "n": len(result.rows), "mean": result.means(), "problems": result.problems, **result.info,
        }
        summary["problems"] += result.problems
    atomic_write(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary
