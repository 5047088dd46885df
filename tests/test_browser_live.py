"""The Expression tab's live camera and video modes in a real browser: Chromium's fake camera
plays a clip made from scikit-image's astronaut, and labelled frames come back."""

from __future__ import annotations

import re
import time

import cv2
import numpy as np
import pytest

from tests.test_app import has_default, serve_app
from tests.test_browser import CHROMIUM_ARGS, chromium  # noqa: F401 - a fixture
from tests.test_live import moving_faces, write_video

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not has_default("expression"), reason="no default expression model in the registry yet"
)


def write_y4m(path, frames: list[np.ndarray], fps: int = 10):
    """RGB frames as a YUV4MPEG2 (4:2:0) file, what Chromium's fake camera plays in a loop."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture
def camera_page(chromium, tmp_path):  # noqa: F811 - the imported fixture
    """A page whose camera is a clip of two astronaut heads moving sideways, looping."""
    clip = write_y4m(tmp_path / "camera.y4m", moving_faces(24, period=12)[12:])
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=args)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_live_camera_frames_come_back_labelled_and_tracked(camera_page):
    page = camera_page
    with serve_app() as url:
        page.goto(url, timeout=60_000)
        page.get_by_role("tab", name="Expression").click()
        page.get_by_role("tab", name="Live camera").click()
        webcam = page.locator("#expression-webcam")
        webcam.get_by_text("Click to Access Webcam").click()
        # The fake camera plays before the stream starts (on a busy machine it may take a while;
        # a click before then starts nothing).
        page.wait_for_function(
            "() => { const v = document.querySelector('#expression-webcam video');"
            " return v && v.readyState >= 2 && v.videoWidth > 0; }",
            timeout=60_000,
        )
        webcam.get_by_role("button", name="capture photo").click()  # starts the stream
        rate = page.locator("#expression-live-rate")
        # A frame rate needs the state of the frame before, sent back by the browser.
        sync_api.expect(rate).to_contain_text("frames/s", timeout=120_000)
        shown = page.locator("#expression-live img")
        first = shown.get_attribute("src")
        assert first.startswith("data:image/jpeg;base64,")
        time.sleep(3)
        assert shown.get_attribute("src") != first, "the annotated frame did not update"
        text = rate.inner_text()
        fps = float(re.search(r"([\d.]+) frames/s", text).group(1))
        assert fps > 1.0, text
        # Two faces, still tracks 1 and 2 after seconds of frames: tracking went through the
        # browser and back each time.
        assert "2 face(s) (1: " in text and ", 2: " in text, text


def test_video_comes_back_annotated_with_a_timeline(chromium, tmp_path):  # noqa: F811
    source = write_video(tmp_path / "clip.avi", moving_faces(30, period=10), fps=10.0)
    with sync_api.sync_playwright() as pw, serve_app() as url:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            page.get_by_role("tab", name="Expression").click()
            page.get_by_role("tab", name="Video").click()
            page.locator("#expression-video input[type=file]").set_input_files(str(source))
            # No player for the upload (a browser cannot preview every codec): its name.
            name = re.compile(r"clip\s*\.avi")  # Gradio shows the stem and the suffix apart
            sync_api.expect(page.locator("#expression-video")).to_contain_text(name)
            assert page.locator("#expression-video video").count() == 0
            page.locator("#expression-video-run").click()
            out = page.locator("#expression-video-out video")
            out.wait_for(timeout=180_000)
            sync_api.expect(page.locator("#expression-video-summary")).to_contain_text(
                "30 frames analysed"
            )
            page.wait_for_function(
                "() => document.querySelector('#expression-video-out video').readyState >= 1",
                timeout=30_000,
            )
            duration, width = out.evaluate("v => [v.duration, v.videoWidth]")
            assert duration == pytest.approx(3.0, abs=0.2) and width == 480
            assert page.locator("#expression-timeline img").count() == 1
        finally:
            browser.close()
