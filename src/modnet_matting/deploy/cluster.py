"""Matting a large photo collection on a Dask cluster: one predictor per worker, files in, files out.

Dask (``pip install 'modnet-matting[cluster]'``) does the scheduling, retries and the
spread over machines; this module adds only what is MODNet's: a worker plugin that loads
the predictor once per worker process (``load_model``, the same backend choice as
everywhere), and a task that mattes one file and writes its outputs beside the others
(atomically, marked as ours, never over a file we did not write). A bad file is reported
in its result and the rest go on.

    from dask.distributed import Client, LocalCluster
    from modnet_matting.deploy.cluster import matte_files

    with Client(LocalCluster(n_workers=2, threads_per_worker=1)) as client:
        results = matte_files(paths, "out/", client, outputs=("alpha", "cutout"))
    failed = [r for r in results if r.error]

On a real cluster, ``Client("scheduler-address:8786")``; every worker needs the package and
the weights file at the same path (or a registry name such as the bundled default).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import need

try:  # the plugin must be Dask's WorkerPlugin; without the extra, matte_files says which to install
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:
    _WorkerPlugin = object

PLUGIN_NAME = "modnet-predictor"
OUTPUTS = ("alpha", "cutout")


@dataclass(frozen=True)
class FileResult:
    """One input's outcome: the files written, or why there are none."""

    path: str
    written: list[str] = field(default_factory=list)
    error: str | None = None


class PredictorPlugin(_WorkerPlugin):  # type: ignore[misc, valid-type]
    """Dask worker plugin: loads the predictor once when a worker starts (or joins later).

    ``threads`` is each worker's torch/OpenVINO thread count: give workers x threads the
    machine's cores, so they do not fight over them.
    """

    name = PLUGIN_NAME

    def __init__(self, weights: str | None, backend: str, precision: str, threads: int) -> None:
        self.weights, self.backend, self.precision, self.threads = weights, backend, precision, threads
        self.predictor = None

    def setup(self, worker: object) -> None:  # noqa: ARG002 - Dask's plugin protocol
        import torch

        from ..inference import load_model

        torch.set_num_threads(self.threads)
        self.predictor = load_model(self.weights, device="cpu", backend=self.backend, precision=self.precision,
                                    threads=self.threads)

    def teardown(self, worker: object) -> None:  # noqa: ARG002 - Dask's plugin protocol
        self.predictor = None


def output_path(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], kind: str) -> Path:
    """``out_dir/<stem>.<kind>.png`` (alpha: greyscale; cutout: RGBA with decontaminated colours)."""
    return Path(out_dir) / f"{Path(path).stem}.{kind}.png"


def matte_file(path: str, out_dir: str, outputs: Sequence[str], overwrite: bool = False) -> FileResult:
    """The task: matte one file with this worker's predictor and write its outputs."""
    from distributed import get_worker

    from ..compose import cutout
    from ..io import ImageReadError, OverwriteRefused, alpha_to_uint, check_replaceable, read_image, save_image

    predictor = get_worker().plugins[PLUGIN_NAME].predictor
    targets = {kind: output_path(path, out_dir, kind) for kind in outputs}
    try:
        for target in targets.values():
            check_replaceable(target, overwrite)
    except OverwriteRefused as exc:
        return FileResult(path, error=str(exc).replace("--overwrite", "overwrite=True"))
    try:
        rgb = read_image(path)
    except (ImageReadError, OSError) as exc:
        return FileResult(path, error=str(exc))
    alpha = predictor.predict_rgb([rgb])[0]
    images = {"alpha": lambda: alpha_to_uint(alpha), "cutout": lambda: cutout(rgb, alpha)}
    try:
        return FileResult(path, [str(save_image(target, images[kind]())) for kind, target in targets.items()])
    except OSError as exc:
        return FileResult(path, error=str(exc))


def matte_files(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    client: object,
    weights: str | None = None,
    backend: str = "auto",
    precision: str = "auto",
    threads: int = 1,
    outputs: Sequence[str] = ("alpha",),
    overwrite: bool = False,
) -> list[FileResult]:
    """Matte every file on the cluster behind ``client`` (a ``distributed.Client``); results in input order.

    Inputs whose names would give the same output are refused before any work starts.
    """
    need("distributed", "cluster", "matting on a Dask cluster")
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown or not outputs:
        raise ValueError(f"outputs are chosen from {', '.join(OUTPUTS)}, not {', '.join(unknown) or 'none'}")
    clashes = [stem for stem, count in Counter(Path(p).stem for p in paths).items() if count > 1]
    if clashes:
        raise ValueError(f"inputs named alike would write the same outputs: {', '.join(sorted(clashes)[:5])}")
    client.register_plugin(PredictorPlugin(weights, backend, precision, threads))  # type: ignore[attr-defined]
    futures = client.map(matte_file, [str(p) for p in paths], out_dir=str(out_dir),  # type: ignore[attr-defined]
                         outputs=tuple(outputs), overwrite=overwrite, pure=False)
    return client.gather(futures)  # type: ignore[attr-defined]
