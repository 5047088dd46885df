"""Uploads are not kept: after requests complete, no uploaded or derived image is on disk, and the
app holds no decoded photo in memory (no session state, nothing alive once a handler returns).

The app runs in a subprocess whose Gradio upload folder, temp folder and home are the test's own,
so every file it writes lands where the test can see it.
"""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from faceres import app
from faceres.app import compare_tab, expression_tab, uploads, verify_tab
from tests.face_pairs import camera_rgb
from tests.test_app import as_upload, has_default, serve_app

skimage_data = pytest.importorskip("skimage.data")

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8", b"BM", b"II*\0", b"MM\0*")


def files_under(*roots: Path) -> dict[Path, tuple[bytes, str]]:
    """Every file below `roots`: its first bytes and its sha256."""
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found[path] = (data[:8], hashlib.sha256(data).hexdigest())
    return found


@pytest.mark.skipif(
    not has_default("identity") and not has_default("expression"),
    reason="no default identity or expression model in the registry yet",
)
def test_no_upload_remains_after_requests(tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    uploads, temp, home = tmp_path / "gradio", tmp_path / "tmp", tmp_path / "home"
    for folder in (uploads, temp, home):
        folder.mkdir()
    env = {"GRADIO_TEMP_DIR": str(uploads), "TMPDIR": str(temp), "HOME": str(home)}
    face_jpeg, png, broken = (tmp_path / n for n in ("face.jpg", "camera.png", "broken.jpg"))
    Image.fromarray(skimage_data.astronaut()).save(face_jpeg, quality=92)
    Image.fromarray(camera_rgb()).save(png)  # another person (not a photo compared with itself)
    broken.write_bytes(face_jpeg.read_bytes()[:2000])

    with serve_app(env) as url:
        before = files_under(uploads, temp, home)
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        calls = 0
        if has_default("identity"):
            out = client.predict(
                handle_file(str(face_jpeg)),
                handle_file(str(png)),
                None,
                None,
                None,
                api_name="/verify",
            )
            assert out[6]["verdict"] == "different"
            picked = client.predict(out[7], 1, 1, api_name="/pick_faces")[4]
            assert picked["verdict"] == "different"
            with pytest.raises(AppError, match="truncated or corrupt"):
                client.predict(
                    handle_file(str(broken)),
                    handle_file(str(face_jpeg)),
                    None,
                    None,
                    None,
                    api_name="/verify",
                )
            calls += 2
        if has_default("expression"):
            out = client.predict(handle_file(str(face_jpeg)), None, api_name="/expression")
            assert out[-1]["faces"]
            calls += 1
        assert calls
        after = files_under(uploads, temp, home)

    sent = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (face_jpeg, png, broken)}
    copies = sorted(str(p) for p, (_, digest) in after.items() if digest in sent)
    assert not copies, f"uploaded photos left on disk: {copies}"
    # Nothing new where Gradio and Python keep temporary files, and no new image anywhere (the
    # study plots were rendered at start-up; a font cache that matplotlib may build in $HOME on
    # first import holds no user data).
    new = {p: head for p, (head, _) in after.items() if p not in before}
    written = sorted(str(p) for p in new if home not in p.parents)
    images = sorted(str(p) for p, head in new.items() if head.startswith(IMAGE_MAGIC))
    assert not written, f"files written while serving requests: {written}"
    assert not images, f"images written while serving requests: {images}"


def test_the_demo_keeps_no_session_state():
    demo = app.build_demo()
    states = [b for b in demo.blocks.values() if isinstance(b, gr.State)]
    assert not states, "session state would keep photos or faces on the server between requests"


@pytest.mark.skipif(
    not has_default("identity") or not has_default("expression"),
    reason="no default identity and expression models in the registry yet",
)
def test_no_decoded_photo_outlives_a_request(monkeypatch, tmp_path):
    upload_dir = tmp_path / "gradio"
    upload_dir.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
    decoded = []

    def load_image(src):
        image = original(src)
        decoded.append(weakref.ref(image))
        return image

    original = uploads.load_image
    monkeypatch.setattr(uploads, "load_image", load_image)
    photo, other = tmp_path / "face.jpg", tmp_path / "other.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=92)
    Image.fromarray(camera_rgb()).save(other, quality=90)  # another person
    outputs = [
        verify_tab.verify_photos(as_upload(photo, upload_dir), as_upload(other, upload_dir)),
        expression_tab.analyze_photo(as_upload(photo, upload_dir)),
    ]
    if compare_tab.twin_pairs():
        outputs.append(compare_tab.compare_models(as_upload(photo, upload_dir)))
    assert len(decoded) == len(outputs) + 1 and outputs[0][6]["verdict"] == "different"
    del outputs  # what Gradio does once the response is sent
    gc.collect()
    assert not [ref for ref in decoded if ref() is not None], "a decoded photo is still held"
    assert not any(upload_dir.rglob("*.jpg"))
