"""End to end: the web page in headless Chromium against a real uvicorn server on loopback.

Uses Debian's ``chromium`` and ``chromium-driver`` through selenium (never a
downloaded browser build). Skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import base64
import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import make_portrait  # noqa: E402
from modnet_matting.inference import Predictor, TorchBackend  # noqa: E402
from modnet_matting.server import create_app  # noqa: E402
from modnet_matting.weights import load_weights  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(random_weights) -> Iterator[str]:
    """uvicorn in a thread on a free loopback port, with the random weights at a small network size."""
    model, config = load_weights(random_weights)
    small = replace(config, preprocess=replace(config.preprocess, reference_size=64))
    app = create_app(predictor=Predictor(TorchBackend(model, "cpu"), small))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path):
    """Headless Chromium at a phone-sized window, downloading into ``downloads``."""
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("Chromium not found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=390,844",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "portrait.png"
    Image.fromarray(make_portrait(96, 80)[0]).save(path)
    return path


def _wait_state(driver, state: str) -> None:
    body = driver.find_element(By.TAG_NAME, "body")
    WebDriverWait(driver, WAIT_S).until(lambda _: body.get_attribute("data-state") == state)


def _loaded_size(driver, element_id: str) -> tuple[int, int]:
    """(naturalWidth, naturalHeight) once the image has decoded."""
    script = (
        f"const i = document.getElementById('{element_id}');"
        "return i.complete ? [i.naturalWidth, i.naturalHeight] : null;"
    )
    WebDriverWait(driver, WAIT_S).until(lambda d: (d.execute_script(script) or [0])[0] > 0)
    return tuple(driver.execute_script(script))


def _upload(driver, element_id: str, path: Path) -> None:
    driver.find_element(By.ID, element_id).send_keys(str(path))


def test_page_fits_a_phone_screen(browser, server_url):
    browser.get(server_url + "/")
    assert browser.title == "MODNet matting"
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
    assert browser.find_element(By.ID, "drop-zone").is_displayed()


def test_upload_shows_matte_and_cutout_and_downloads_a_png(browser, server_url, photo_file, downloads):
    browser.get(server_url + "/")
    _upload(browser, "file-input", photo_file)
    _wait_state(browser, "done")
    assert _loaded_size(browser, "matte") == (80, 96)
    assert _loaded_size(browser, "cutout") == (80, 96)
    assert not browser.find_element(By.ID, "composite-figure").is_displayed()  # transparent: no composite
    checker = browser.execute_script(
        "return getComputedStyle(document.getElementById('cutout').parentElement).backgroundImage"
    )
    assert "gradient" in checker  # the cut-out sits on a checkerboard
    assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 0

    link = browser.find_element(By.ID, "download-cutout")
    browser.execute_script("arguments[0].scrollIntoView()", link)
    link.click()
    target = downloads / "portrait-cutout.png"
    WebDriverWait(browser, WAIT_S).until(lambda _: target.exists() and target.stat().st_size > 0)
    with Image.open(io.BytesIO(target.read_bytes())) as saved:
        assert saved.format == "PNG" and saved.mode == "RGBA" and saved.size == (80, 96)


def test_dropping_a_photo_on_the_page_works(browser, server_url, photo_file):
    browser.get(server_url + "/")
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (ch) => ch.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        """,
        base64.b64encode(photo_file.read_bytes()).decode(),
    )
    _wait_state(browser, "done")
    assert _loaded_size(browser, "cutout") == (80, 96)
    assert browser.find_element(By.ID, "download-cutout").get_attribute("download") == "dropped-cutout.png"


def test_colour_and_image_backgrounds_give_a_composite(browser, server_url, photo_file, tmp_path):
    browser.get(server_url + "/")
    _upload(browser, "file-input", photo_file)
    _wait_state(browser, "done")
    browser.execute_script(
        "const c = document.getElementById('bg-color'); c.value = '#00ff00';"
        "c.dispatchEvent(new Event('input', {bubbles: true}));"
    )
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "composite-figure").is_displayed())
    _wait_state(browser, "done")
    assert _loaded_size(browser, "composite") == (80, 96)

    backdrop = tmp_path / "backdrop.png"
    Image.fromarray(np.full((40, 60, 3), (200, 30, 30), np.uint8)).save(backdrop)
    browser.execute_script("document.getElementById('composite').removeAttribute('src')")
    _upload(browser, "bg-image", backdrop)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "composite").get_attribute("src"))
    _wait_state(browser, "done")
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="bg"][value="image"]').is_selected()
    assert _loaded_size(browser, "composite") == (80, 96)


def test_non_image_upload_shows_the_servers_error(browser, server_url, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not really a picture")
    browser.get(server_url + "/")
    _upload(browser, "file-input", fake)
    _wait_state(browser, "error")
    status = browser.find_element(By.ID, "status")
    assert "not an image" in status.text and "error" in status.get_attribute("class")


def _images_run(server_url: str) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(server_url + "/healthz", timeout=10) as response:
        return json.load(response)["images_run"]


def test_a_new_colour_recomposes_without_running_the_network_again(browser, server_url, photo_file):
    """Each background change re-ran the whole matte on the server."""
    browser.get(server_url + "/")
    _upload(browser, "file-input", photo_file)
    _wait_state(browser, "done")
    before = _images_run(server_url)
    for colour in ("#00ff00", "#ff0000"):
        browser.execute_script(
            f"const c = document.getElementById('bg-color'); c.value = '{colour}';"
            "c.dispatchEvent(new Event('input', {bubbles: true}));"
        )
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "composite-figure").is_displayed())
        time.sleep(0.6)  # past the 250 ms debounce
        _wait_state(browser, "done")
    assert _images_run(server_url) == before
    read_pixels = (
        "const i = document.getElementById(arguments[0]); const c = document.createElement('canvas');"
        "c.width = i.naturalWidth; c.height = i.naturalHeight; const x = c.getContext('2d');"
        "x.drawImage(i, 0, 0); return Array.from(x.getImageData(0, 0, c.width, c.height).data);"
    )
    composite = np.array(browser.execute_script(read_pixels, "composite"), np.float32).reshape(96, 80, 4)
    cutout = np.array(browser.execute_script(read_pixels, "cutout"), np.float32).reshape(96, 80, 4)
    alpha = cutout[..., 3:] / 255
    expected = cutout[..., :3] * alpha + np.array([255, 0, 0], np.float32) * (1 - alpha)  # over the last colour
    assert np.abs(composite[..., :3] - expected).max() <= 2
    composite_top = browser.find_element(By.ID, "composite-figure").rect["y"]
    assert composite_top < browser.find_element(By.ID, "matte").rect["y"]  # on a phone the composite comes first


def test_an_error_clears_the_previous_results(browser, server_url, photo_file, tmp_path):
    browser.get(server_url + "/")
    _upload(browser, "file-input", photo_file)
    _wait_state(browser, "done")
    assert browser.find_element(By.ID, "results").is_displayed()
    fake = tmp_path / "broken.png"
    fake.write_text("not a picture")
    _upload(browser, "file-input", fake)
    _wait_state(browser, "error")
    assert not browser.find_element(By.ID, "results").is_displayed()  # no stale matte or download button


def test_a_file_that_is_not_an_image_clears_the_previous_results(browser, server_url, photo_file, tmp_path):
    """The page refused a .txt itself but kept the last photo's matte and download buttons beside the error."""
    browser.get(server_url + "/")
    _upload(browser, "file-input", photo_file)
    _wait_state(browser, "done")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    _upload(browser, "file-input", notes)
    _wait_state(browser, "error")
    assert "is not an image" in browser.find_element(By.ID, "status").text
    assert not browser.find_element(By.ID, "results").is_displayed()
