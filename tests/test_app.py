"""The Gradio demo, app.py, used as a user would: served by `python app.py` in a subprocess, driven in headless
Chromium (playwright) and through gradio_client; plus its configuration and interface without a server. The model
menu and the restore function it calls are the library's, facerest/demo.py, tested in test_demo.py.

The server tests start one server for the module (about 20-30 s here) with tiny random 64 px pipelines, so the
"restored" faces are colour blobs: what is checked is the plumbing (upload, detection, paste-back, download, API,
queue, memory), not restoration quality. Chromium is Debian's (/usr/bin/chromium, or $FACEREST_CHROMIUM);
`playwright install` is never needed. The screenshot goes to test-artifacts/app_restored.png (git-ignored).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import pytest

from conftest import REPO_ROOT, SHARED, free_port, png_claiming, shared_path
from facerest.demo import load_models
from facerest.face_detection import FaceDetector
from tiny_pipelines import save_tiny_pipelines

APP_PATH = REPO_ROOT / "app.py"
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("FACEREST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DETECTOR_WEIGHTS = SHARED / "weights" / "facexlib"
# The test server refuses inputs above this many pixels, so gfpgan_00.jpg (1297 x 1920 = 2.49 MP) is "too large".
TEST_SERVER_MAX_PIXELS = 2_000_000
SERVER_START_TIMEOUT_S = 180
# Allowed growth of the server's resident memory over 40 requests (two batches of 20 at once), after two warm-up
# batches (the allocator's arenas, Gradio's worker threads): a leak of 2.5 MB or more per request fails it. Gradio
# itself keeps about 60 KB per new client session (its state_holder; every request here is a new client). Measured
# here, server with MALLOC_ARENA_MAX=2: after the warm-up, 0-30 MB a batch, levelling off.
WARM_UP_BATCHES = 2
RSS_GROWTH_LIMIT_MB = 100


def _load_app():
    spec = importlib.util.spec_from_file_location("facerest_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


app = _load_app()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return save_tiny_pipelines(tmp_path_factory.mktemp("app-models"))


@pytest.fixture(scope="module")
def detector():
    return app.make_detector(DETECTOR_WEIGHTS if DETECTOR_WEIGHTS.is_dir() else None)


# ------------------------------------------------------------------------------------- without a server


def test_a_device_this_machine_lacks_is_one_error_line(tiny_models, capsys):
    assert app.main(["--model", str(tiny_models["gfpgan"]), "--device", "cuda:99"]) == 2
    error = capsys.readouterr().err
    assert error.strip().startswith("error: device 'cuda:99' is not available") and "\n" not in error.strip()


def test_the_startup_line_gives_a_detector_fallback_as_what_to_do_not_the_long_reason():
    fallback = FaceDetector("mtcnn")
    fallback.fallback_reason = "RetinaFace weights unavailable (needs detection_Resnet50_Final.pth; looked in: " + "/a/b, " * 20 + ")"
    assert app.detector_summary(fallback) == "mtcnn (RetinaFace weights not found: give them with --detector-weights DIR)"
    assert app.detector_summary(FaceDetector("mtcnn")) == "mtcnn"


def test_no_model_configured_fails_naming_the_default_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(app, "DEFAULT_MODEL_DIR", tmp_path / "models" / "default")
    monkeypatch.delenv(app.MODELS_ENV, raising=False)
    assert app.main([]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "models" / "default") in error and "--model" in error and app.MODELS_ENV in error


def test_model_specs_order_cli_env_default(monkeypatch, tmp_path):
    assert app.model_specs(["a", "b"], {app.MODELS_ENV: "c"}) == ["a", "b"]
    assert app.model_specs(None, {app.MODELS_ENV: " owner/m1, ./m2 ,"}) == ["owner/m1", "./m2"]
    default = tmp_path / "default"
    default.mkdir()
    (default / "model_index.json").write_text("{}")
    monkeypatch.setattr(app, "DEFAULT_MODEL_DIR", default)
    assert app.model_specs(None, {}) == [str(default)]


def test_detector_follows_the_weights_given():
    weights = shared_path("weights", "facexlib", "detection_mobilenet0.25_Final.pth")
    assert app.make_detector(weights.parent).name == "retinaface-mobilenet0.25"
    assert app.make_detector(weights).name == "retinaface-mobilenet0.25"


def _data_url(width: int, height: int) -> str:
    """A PNG of one gray as a `data:` URL: a few KB for any number of pixels."""
    import io

    buffer = io.BytesIO()
    PIL.Image.new("L", (width, height), 128).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_large_data_url_image_is_refused_before_gradio_decodes_it(tiny_models, detector, tmp_path, monkeypatch):
    from gradio import image_utils
    from gradio.data_classes import ImageData

    url = _data_url(6000, 4000)  # 24 megapixels
    assert len(url) < 200_000
    refusal = app.data_url_too_large(url, 16_000_000)
    assert refusal == "image too large: 6000x4000 = 24,000,000 pixels, the limit is 16,000,000"
    assert app.data_url_too_large(url, 30_000_000) is None
    assert app.data_url_too_large("data:image/png;base64,bm90IGFuIGltYWdl", 100) is None  # not an image: Gradio says so
    beyond_pillow = "data:image/png;base64," + base64.b64encode(png_claiming(100_000)).decode()  # over Pillow's 179 MP
    assert app.data_url_too_large(beyond_pillow, 16_000_000) == "image too large: 10,000,000,000 pixels, the limit is 16,000,000"

    registry = load_models([str(tiny_models["gfpgan"])], offer_official=False)
    demo = app.build_demo(registry, detector, tmp_path, max_pixels=16_000_000)
    (image_input,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "input-image"]
    decoded = []
    monkeypatch.setattr(image_utils, "decode_base64_to_image", lambda encoding: decoded.append(encoding))
    with pytest.raises(Exception, match="image too large: 6000x4000") as error:
        image_input.preprocess(ImageData(url=url))
    assert type(error.value).__name__ == "Error" and decoded == []


# ------------------------------------------------------------------------------------- the served app


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _start_server(model_args: list[str], work: Path):
    """`python app.py MODEL_ARGS` offline on a free port of 127.0.0.1; yields the running `Server`, then stops it."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",
        "FACEREST_CACHE": str(work / "cache"),  # no converted official GFP-GAN: it is listed unavailable
        "GRADIO_TEMP_DIR": str(work / "gradio"),
        "PYTHONUNBUFFERED": "1",
        # glibc's default of up to 8 malloc arenas per core lets the resident size of a server with 20 request
        # threads climb by 60-130 MB a batch for several batches before it levels off; with 2 arenas the
        # climb is a few MB a batch, so a leak stands out (see RSS_GROWTH_LIMIT_MB)
        "MALLOC_ARENA_MAX": "2",
    }
    env.pop(app.MODELS_ENV, None)
    if DETECTOR_WEIGHTS.is_dir():
        env[app.DETECTOR_WEIGHTS_ENV] = str(DETECTOR_WEIGHTS)
    command = [
        sys.executable, str(APP_PATH), *model_args,
        "--host", "127.0.0.1", "--port", str(port), "--max-pixels", str(TEST_SERVER_MAX_PIXELS),
    ]
    log = work / "server.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    running = Server(f"http://127.0.0.1:{port}/", process, log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with status {process.returncode}:\n{running.log_tail()}")
            try:
                with urllib.request.urlopen(running.url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within {SERVER_START_TIMEOUT_S} s:\n{running.log_tail()}")
            time.sleep(0.5)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    """`python app.py` with the tiny GFP-GAN and IDM pipelines (so also their hybrid)."""
    model_args = ["--model", str(tiny_models["gfpgan"]), "--model", str(tiny_models["idm"])]
    yield from _start_server(model_args, tmp_path_factory.mktemp("app-server"))


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """`python app.py` with no model given: the shipped default, models/default, as on a fresh machine."""
    yield from _start_server([], tmp_path_factory.mktemp("app-default-server"))


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    if not CHROMIUM.is_file():
        pytest.skip(f"needs Chromium at {CHROMIUM} (Debian's chromium package, or set FACEREST_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open_app(browser, server: Server):
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.set_default_timeout(60_000)
    page.goto(server.url)
    page.wait_for_selector("#restore-button")
    return page


def _upload(page, path: Path) -> None:
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#input-image img")


def _face_boxes(info: str) -> list[list[float]]:
    match = re.search(r"Face boxes \(x1, y1, x2, y2\):\s*([0-9.,;\s]+)", info)
    assert match, f"no face boxes in the result info:\n{info}"
    return [[float(value) for value in box.split(",")] for box in match.group(1).strip().split(";")]


@pytest.mark.slow
def test_browser_restores_a_photo_with_the_shipped_default_model(default_server, browser, tmp_path):
    photo_path = shared_path("data", "whole_imgs", "codeformer_00.jpg")  # four small faces the default sharpens
    page = _open_app(browser, default_server)
    _upload(page, photo_path)
    assert page.locator("#upscale input[type=number]").input_value() == "2"
    page.click("#restore-button")
    page.wait_for_selector("#before-after img", timeout=120_000)
    assert page.locator("#before-after img").count() == 2
    page.wait_for_selector("#download a")
    page.wait_for_selector("#faces img")
    info = page.locator("#info").inner_text()

    with page.expect_download() as download_info:
        page.locator("#download a").first.click()
    downloaded = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(downloaded)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_restored.png"), full_page=True)

    assert downloaded.name == "codeformer_00_restored.png"
    with PIL.Image.open(photo_path) as photo_file:
        photo = photo_file.convert("RGB")
    with PIL.Image.open(downloaded) as result_file:
        assert result_file.format == "PNG"
        assert result_file.size == (photo.width * 2, photo.height * 2)
        result = np.asarray(result_file.convert("RGB"), np.float32)
    expected_detector = "retinaface-mobilenet0.25" if DETECTOR_WEIGHTS.is_dir() else "mtcnn"
    assert f"Detector: {expected_detector}" in info
    assert page.locator("#faces img").count() == int(re.search(r"Faces restored: (\d+)", info).group(1))
    boxes = _face_boxes(info)
    assert len(boxes) >= 1
    enlarged = np.asarray(photo.resize(result_file.size, PIL.Image.LANCZOS), np.float32)
    # each restored face differs from the input inside its box (in output pixels), the resized background far less
    for x1, y1, x2, y2 in boxes:
        inside = (slice(int(y1 * 2), int(y2 * 2)), slice(int(x1 * 2), int(x2 * 2)))
        assert np.abs(result[inside] - enlarged[inside]).mean() > 1, (x1, y1, x2, y2)
    corner = (slice(-40, None), slice(-40, None))  # far below the faces: only the background resize
    assert np.abs(result[corner] - enlarged[corner]).mean() < 3
    page.close()


@pytest.mark.slow
def test_browser_shows_a_lone_restored_face_whole(default_server, browser):
    """One face is one thumbnail of the gallery's row, not stretched to its width and cut to its height (a forehead)."""
    page = _open_app(browser, default_server)
    _upload(page, shared_path("data", "whole_imgs", "codeformer_03.jpg"))  # one face
    page.click("#restore-button")
    page.wait_for_selector("#faces img", timeout=120_000)
    page.wait_for_function("document.querySelector('#faces img').complete", timeout=60_000)
    # both boxes from one frame: read one after the other, a scroll or layout between them (seen under CI's load) moved one
    gallery, thumbnail = page.evaluate(
        "['#faces', '#faces img'].map(selector => {"
        " const box = document.querySelector(selector).getBoundingClientRect();"
        " return {x: box.x, y: box.y, width: box.width, height: box.height}; })"
    )
    assert gallery["y"] <= thumbnail["y"] and thumbnail["y"] + thumbnail["height"] <= gallery["y"] + gallery["height"]
    assert thumbnail["width"] < gallery["width"] / 2
    page.close()


@pytest.mark.slow
def test_browser_shows_diffusion_progress_for_the_hybrid(server, browser):
    from playwright.sync_api import expect

    page = _open_app(browser, server)
    _upload(page, shared_path("data", "whole_imgs", "gfpgan_Blake_Lively.jpg"))
    page.click("#model input")
    page.get_by_role("option", name="hybrid").click()
    page.get_by_text("Diffusion (IDM and hybrid models)").click()
    steps = page.locator("#steps input[type=number]")
    strength = page.locator("#strength input[type=number]")
    expect(strength).to_have_value("0.3")  # the model's change set the hybrid's default strength
    expect(steps).to_be_enabled()
    steps.fill("200")
    steps.press("Enter")
    strength.fill("1")
    strength.press("Enter")
    expect(steps).to_have_value("200")
    expect(strength).to_have_value("1")
    page.click("#restore-button")
    # gr.Progress(track_tqdm=True) relays the pipeline's "IDM sampling" tqdm bar to the output's status
    page.wait_for_function(
        "() => document.querySelector('#before-after').innerText.includes('IDM sampling')", timeout=60_000
    )
    page.wait_for_selector("#before-after img", timeout=120_000)
    info = page.locator("#info").inner_text()
    assert "hybrid (GFP-GAN + IDM, 64 px)" in info
    assert "Diffusion: 200 steps, strength 1, seed 0" in info
    page.close()


@pytest.mark.slow
def test_client_restore_endpoint(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False, download_files=tmp_path)
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/restore"]

    photo_path = shared_path("data", "whole_imgs", "codeformer_00.jpg")
    before_after, faces, png, info, details = client.predict(
        handle_file(str(photo_path)), "gfpgan", False, 2, 25, 0.3, 0, 1.0, True, api_name="/restore"
    )  # the last, paste_every_face, is optional: the calls below leave it out
    assert details["paste_every_face"] is True and details["denoise"] is True  # denoise: optional, True
    with PIL.Image.open(photo_path) as photo:
        expected_size = (photo.width * 2, photo.height * 2)
    with PIL.Image.open(png) as result:
        assert result.format == "PNG" and result.size == expected_size
    assert len(before_after) == 2 and all(Path(path).is_file() for path in before_after)
    assert details["output_size"] == list(expected_size)
    assert len(faces) == len(details["face_boxes"]) >= 1
    assert details["detector"] in ("retinaface-mobilenet0.25", "mtcnn") and "Detector:" in info

    face_path = shared_path("data", "cropped_lq")
    face_path = sorted(face_path.glob("*.png"))[0]
    _, faces, png, _, details = client.predict(
        handle_file(str(face_path)), "idm", True, 1, 4, 1.0, 7, 1.0, api_name="/restore"
    )
    with PIL.Image.open(png) as result, PIL.Image.open(face_path) as face:
        assert result.size == face.size
    assert details["kind"] == "idm" and details["steps"] == 4 and details["seed"] == 7 and details["detector"] is None
    assert details["paste_every_face"] is False

    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tagged = tmp_path / "tagged.jpg"
    PIL.Image.open(face_path).convert("RGB").save(tagged, icc_profile=srgb, quality=95)
    _, _, png, _, _ = client.predict(handle_file(str(tagged)), "gfpgan", True, 1, 4, 1.0, 0, 1.0, api_name="/restore")
    with PIL.Image.open(png) as result:
        assert result.info.get("icc_profile") == srgb  # the upload's colour profile reaches the result

    phone = tmp_path / "phone.heic"  # an iPhone's photo: HEIC, stored on its side with an EXIF orientation
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    with PIL.Image.open(photo_path) as photo:
        photo.save(phone, exif=exif.tobytes(), quality=90)
        upright_size = (photo.height, photo.width)
    _, _, png, _, details = client.predict(
        handle_file(str(phone)), "gfpgan", False, 1, 4, 1.0, 0, 1.0, api_name="/restore"
    )
    with PIL.Image.open(png) as result:
        assert result.size == upright_size and details["output_size"] == list(upright_size)

    deep = tmp_path / "scan48.png"  # a 48-bit scan: Gradio hands the upload over as it is, so its depth is noted
    face_pixels = np.asarray(PIL.Image.open(face_path).convert("RGB").resize((64, 64)))
    cv2.imwrite(str(deep), face_pixels[..., ::-1].astype(np.uint16) * 257)
    _, _, _, info, details = client.predict(handle_file(str(deep)), "gfpgan", True, 1, 4, 1.0, 0, 1.0, api_name="/restore")
    assert details["messages"] == ["a 16-bit image: restored and saved at 8 bits per channel"]
    assert "**Note:** a 16-bit image" in info


@pytest.mark.slow
def test_client_errors_are_clear(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False, download_files=tmp_path)
    garbage = tmp_path / "O'Brien & co.jpg"
    garbage.write_bytes(b"these bytes are not a JPEG")
    with pytest.raises(AppError, match=r"O'Brien & co\.jpg cannot be read as an image"):  # as named, not as HTML
        client.predict(handle_file(str(garbage)), "gfpgan", False, 1, 25, 0.3, 0, 1.0, api_name="/restore")
    assert app.error_text("<img src=x onerror=alert(1)>.png") == "&lt;img src=x onerror=alert(1)&gt;.png"
    large = shared_path("data", "whole_imgs", "gfpgan_00.jpg")  # 2.49 MP, above the server's --max-pixels
    with pytest.raises(AppError, match="image too large"):
        client.predict(handle_file(str(large)), "gfpgan", False, 1, 25, 0.3, 0, 1.0, api_name="/restore")
    blank = tmp_path / "wall.png"
    PIL.Image.new("RGB", (200, 150), (200, 190, 180)).save(blank)
    _, faces, png, info, details = client.predict(
        handle_file(str(blank)), "gfpgan", False, 1, 25, 0.3, 0, 1.0, api_name="/restore"
    )
    assert faces == [] and details["messages"] == ["no face found: returned unchanged"]
    assert "no face found" in info


def _rss_mb(process_id: int) -> float:
    import psutil

    process = psutil.Process(process_id)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


@pytest.mark.slow
def test_twenty_concurrent_requests_queue_and_bounded_memory(server, tmp_path):
    from gradio_client import Client, handle_file

    pytest.importorskip("psutil")
    photo_path = shared_path("data", "whole_imgs", "codeformer_01.jpg")  # 248 x 189, one face

    def request(index: int):
        client = Client(server.url, verbose=False, download_files=tmp_path)  # one per thread: 20 users at once
        return client.predict(handle_file(str(photo_path)), "gfpgan", False, 1, 25, 0.3, index, 1.0, api_name="/restore")

    def batch_of_twenty():
        with ThreadPoolExecutor(max_workers=20) as pool:
            return list(pool.map(request, range(20)))

    for _ in range(WARM_UP_BATCHES):  # the allocator's arenas and the server's threads are set up, not leaked
        batch_of_twenty()
    rss_before = _rss_mb(server.process.pid)
    started = time.monotonic()
    results = batch_of_twenty() + batch_of_twenty()
    seconds = time.monotonic() - started
    rss_after = _rss_mb(server.process.pid)

    assert len(results) == 40
    for _, faces, png, _, details in results:
        assert details["output_size"] == [248, 189] and len(faces) >= 1
        with PIL.Image.open(png) as result:
            assert result.format == "PNG" and result.size == (248, 189)
    growth = rss_after - rss_before
    print(f"2 x 20 concurrent requests: {seconds:.1f} s; server RSS {rss_before:.0f} -> {rss_after:.0f} MB")
    assert growth < RSS_GROWTH_LIMIT_MB, f"server RSS grew {growth:.0f} MB over 40 requests:\n{server.log_tail()}"
    assert server.process.poll() is None
