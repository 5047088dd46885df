"""One end-to-end run in a real browser: Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from photos import two_faces
from PIL import Image

from tests.test_app import has_default, serve_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
skimage_data = pytest.importorskip("skimage.data")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt when missing (skipped when that is impossible)."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.skip("/usr/bin/chromium is missing and apt-get is not available")
        try:
            subprocess.run(
                ["apt-get", "install", "-y", "chromium"],
                check=True,
                capture_output=True,
                timeout=900,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            pytest.skip(
                f"/usr/bin/chromium is missing and `apt-get install chromium` failed: {exc}"
            )
    return CHROMIUM


@pytest.fixture
def page(chromium):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.skipif(
    not has_default("identity"), reason="no default identity model in the registry yet"
)
def test_upload_two_photos_read_the_verdict_and_pick_another_face(page, tmp_path):
    big = skimage_data.astronaut()
    photos = tmp_path / "group.jpg", tmp_path / "astronaut.jpg"
    Image.fromarray(two_faces(big)).save(photos[0], quality=92)
    Image.fromarray(big).save(photos[1], quality=92)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (127, 127, 127)).save(blank)
    with serve_app() as url:
        page.goto(url, timeout=60_000)
        for box, photo in zip(("#verify-photo1", "#verify-photo2"), photos, strict=True):
            page.locator(f"{box} input[type=file]").set_input_files(str(photo))
            page.locator(f"{box} img").first.wait_for(timeout=30_000)
        page.locator("#verify-run").click()
        verdict = page.locator("#verify-verdict")
        sync_api.expect(verdict).to_contain_text("Same person", timeout=120_000)
        assert "similarity" in verdict.inner_text()
        assert page.locator("img[alt^='photo 1']").count() == 1
        first = verdict.inner_text()
        # Another face: recomputed from what the browser holds (the photos are gone).
        page.locator("#verify-face1 input").click()
        page.get_by_role("option", name="Face 2").click()
        sync_api.expect(page.get_by_text("photo 1, face 2")).to_be_visible(timeout=60_000)
        assert verdict.inner_text() != first and "similarity" in verdict.inner_text()
        # Run again with another detector, no new upload: the page's photos are held in memory.
        page.locator("#verify-detector input").click()
        page.get_by_role("option", name="dlib").click()
        page.locator("#verify-run").click()
        sync_api.expect(verdict).not_to_contain_text("similarity", timeout=30_000)  # cleared first
        sync_api.expect(verdict).to_contain_text("similarity", timeout=120_000)
        assert page.get_by_text("upload the photo again").count() == 0
        assert "detector dlib" in verdict.inner_text()
        # A photo without a face: the old answer goes when it is replaced, and the error leaves
        # no answer on screen.
        page.locator("#verify-photo2 input[type=file]").set_input_files(str(blank))
        sync_api.expect(verdict).not_to_contain_text("similarity", timeout=30_000)
        page.locator("#verify-photo2 img").first.wait_for(timeout=30_000)
        page.locator("#verify-run").click()
        sync_api.expect(page.get_by_text("No face found in image 2").first).to_be_visible(
            timeout=60_000
        )
        sync_api.expect(verdict).not_to_contain_text("similarity")
        assert page.locator("img[alt^='photo 1']").count() == 0
        # A face again, a run: the new answer; then replacing photo 1 clears it and the face
        # pickers (no stale verdict beside another photo).
        page.locator("#verify-photo2 input[type=file]").set_input_files(str(photos[1]))
        page.locator("#verify-photo2 img").first.wait_for(timeout=30_000)
        page.locator("#verify-run").click()
        sync_api.expect(verdict).to_contain_text("similarity", timeout=120_000)
        sync_api.expect(page.locator("#verify-face1")).to_be_visible()
        page.locator("#verify-photo1 input[type=file]").set_input_files(str(photos[1]))
        sync_api.expect(verdict).not_to_contain_text("similarity", timeout=30_000)
        sync_api.expect(page.locator("#verify-face1")).to_be_hidden(timeout=30_000)


@pytest.mark.skipif(
    not has_default("identity"), reason="no default identity model in the registry yet"
)
def test_find_a_person_among_ten_photos(page):
    from face_pairs import lfw_photo
    from test_find import lfw_people

    probe = lfw_photo("Aaron_Peirsol", 3)
    photos = [*lfw_people(5), lfw_photo("Aaron_Peirsol", 1), *lfw_people(9)[5:]]
    with serve_app() as url:
        page.goto(url, timeout=60_000)
        page.get_by_role("tab", name="Find").click()
        page.locator("#find-probe input[type=file]").set_input_files(str(probe))
        page.locator("#find-probe img").first.wait_for(timeout=30_000)
        page.locator("#find-photos input[type=file]").set_input_files([str(p) for p in photos])
        sync_api.expect(page.locator("#find-photos")).to_contain_text(photos[-1].stem)
        page.locator("#find-run").click()
        result = page.locator("#find-result")
        sync_api.expect(result).to_contain_text("Best matches", timeout=120_000)
        first = result.locator("figcaption").first.inner_text()
        assert "Aaron_Peirsol_0001.jpg" in first and first.endswith("same"), first


@pytest.mark.skipif(not has_default("expression"), reason="no expression model in the registry")
def test_remove_a_block_in_the_resnet_vs_plain_tab(page, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=92)
    with serve_app() as url:
        page.goto(url, timeout=60_000)
        page.get_by_role("tab", name="ResNet vs plain").click()
        page.locator("#compare-photo input[type=file]").set_input_files(str(photo))
        page.locator("#compare-photo img").first.wait_for(timeout=30_000)
        page.locator("#lesion-block input").click()
        page.get_by_role("option", name="block 4").click()
        page.locator("#lesion-run").click()
        result = page.locator("#lesion-result")
        sync_api.expect(result).to_contain_text("without the block", timeout=60_000)
        assert result.locator("tr").count() == 3 and "layer3.1" in result.inner_text()
