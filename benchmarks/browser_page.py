"""The in-browser page's speed in headless Chromium: one photo's latency and the camera's frames per second.

Exports the page (``modnet export --format web``) once, serves it two ways, and drives
Chromium (Debian's, through selenium) with a fake camera:
- ``static``: a plain static server (``python -m http.server``): no cross-origin isolation,
  so onnxruntime-web runs one WASM thread;
- ``serve``: ``modnet serve``'s ``/browser/`` with the isolation headers: several threads.
Headless Chromium has no WebGPU here, so both run on WASM. Prints a table, writes JSON.

    python benchmarks/browser_page.py --seconds 20 --json benchmarks/results/browser_page.json
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import shutil
import socket
import tempfile
import threading
import time
from datetime import date
from importlib import resources
from pathlib import Path

PHOTO = Path(str(resources.files("modnet_matting") / "assets" / "grace_hopper.jpg"))


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _static(folder: Path) -> str:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def _served(weights: str) -> str:
    import uvicorn

    from modnet_matting.server import create_app

    port = _port()
    server = uvicorn.Server(uvicorn.Config(create_app(weights=weights, backend="torch", precision="fp32",
                                                      device="cpu"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/browser/"


def _browser():  # noqa: ANN202 - a selenium driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)


def measure(driver, url: str, seconds: float) -> dict:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 120).until(lambda d: d.execute_script("return modnet.ready || modnet.error"))
    start = time.perf_counter()
    driver.find_element(By.ID, "photo").send_keys(str(PHOTO))
    WebDriverWait(driver, 120).until(lambda d: d.execute_script("return modnet.alpha !== null"))
    photo_s = time.perf_counter() - start
    status = driver.find_element(By.ID, "status").text
    driver.find_element(By.ID, "camera").click()
    WebDriverWait(driver, 120).until(lambda d: d.execute_script("return modnet.frames >= 3"))
    first = driver.execute_script("return modnet.frames")
    time.sleep(seconds)
    frames = driver.execute_script("return modnet.frames") - first
    speed = driver.find_element(By.ID, "speed").text
    driver.find_element(By.ID, "camera").click()
    return {"url": url, "photo_seconds": round(photo_s, 2), "photo_status": status,
            "camera_fps": round(frames / seconds, 2), "camera_status": speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="modnet-people")
    parser.add_argument("--seconds", type=float, default=20.0, help="camera time per way of serving")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    from modnet_matting.cli.main import main as modnet
    from modnet_matting.deploy.web import RUNTIME_VERSION, folder_size

    folder = Path(tempfile.mkdtemp(prefix="modnet-web-")) / "page"
    if modnet(["export", "--format", "web", "--weights", args.weights, "-o", str(folder), "--no-check"]) != 0:
        raise SystemExit("export failed")
    driver = _browser()
    try:
        rows = {"static": measure(driver, _static(folder), args.seconds),
                "serve": measure(driver, _served(args.weights), args.seconds)}
    finally:
        driver.quit()
    print(f"{'served by':10} {'photo s':>8} {'camera fps':>11}  page status")
    for name, row in rows.items():
        print(f"{name:10} {row['photo_seconds']:8.2f} {row['camera_fps']:11.2f}  {row['camera_status']}")
    result = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "runtime": f"onnxruntime-web {RUNTIME_VERSION}",
              "export_mb": round(folder_size(folder) / 1e6, 1), "weights": args.weights, "note": args.note,
              "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
