"""``deploy.cluster.matte_files`` on a local Dask cluster of two worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_portrait

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                  "(pip install 'modnet-matting[cluster]')")

from modnet_matting.deploy.cluster import matte_files  # noqa: E402
from modnet_matting.inference import load_model  # noqa: E402
from modnet_matting.io import read_image  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=40)
    with distributed.Client(cluster) as connected:
        yield connected
    cluster.close()


def test_two_workers_matte_a_folder_as_one_process_does(client, random_weights: Path, tmp_path: Path) -> None:
    photos = []
    for seed in range(4):
        photos.append(tmp_path / f"p{seed}.png")
        Image.fromarray(make_portrait(64, 48, seed=seed)[0]).save(photos[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    out = tmp_path / "out"
    results = matte_files([*photos, broken], out, client, weights=str(random_weights), backend="torch",
                          precision="fp32", outputs=("alpha", "cutout"))
    assert [Path(r.path).name for r in results] == [*(p.name for p in photos), "broken.jpg"]  # input order
    assert all(r.error is None and len(r.written) == 2 for r in results[:4])
    assert results[4].error and not results[4].written  # reported; the rest went on
    local = load_model(random_weights, device="cpu", backend="torch", precision="fp32")
    for photo in photos:
        alpha = read_image(out / f"{photo.stem}.alpha.png")[..., 0].astype(np.float32) / 255
        expected = local.predict(read_image(photo))
        assert np.abs(alpha - expected).max() <= 1.5 / 255
        assert read_image(out / f"{photo.stem}.cutout.png").shape[:2] == (64, 48)
    workers = client.run(lambda dask_worker: dask_worker.plugins["modnet-predictor"].predictor is not None)
    assert len(workers) == 2 and all(workers.values())  # one predictor per worker, loaded at setup


def test_a_file_we_did_not_write_is_kept_and_clashing_names_refused(client, random_weights: Path,
                                                                     tmp_path: Path) -> None:
    photo = tmp_path / "a" / "p.png"
    photo.parent.mkdir()
    Image.fromarray(make_portrait(64, 48)[0]).save(photo)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p.alpha.png").write_bytes(b"the user's file")
    (result,) = matte_files([photo], out, client, weights=str(random_weights), backend="torch", precision="fp32")
    assert "modnet did not write it (overwrite=True replaces it)" in result.error
    assert (out / "p.alpha.png").read_bytes() == b"the user's file"
    twin = tmp_path / "b" / "p.jpg"
    twin.parent.mkdir()
    Image.fromarray(make_portrait(64, 48)[0]).save(twin)
    with pytest.raises(ValueError, match="named alike"):
        matte_files([photo, twin], out, client, weights=str(random_weights))
