"""Uploads are not kept: after requests complete, no uploaded or derived image is on disk.

The app runs in a subprocess whose Gradio upload folder, temp folder and home are the test's own,
so every file it writes lands where the test can see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.test_app import has_default, serve_app

skimage_data = pytest.importorskip("skimage.data")

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8", b"BM", b"II*\0", b"MM\0*")


def files_under(*roots: Path) -> dict[Path, bytes]:
    """Every file below `roots` with its first bytes."""
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                with path.open("rb") as f:
                    found[path] = f.read(8)
    return found


@pytest.mark.skipif(not has_default("identity") and not has_default("expression"),
                    reason="no default identity or expression model in the registry yet")
def test_no_upload_remains_after_requests(tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    uploads, temp, home = tmp_path / "gradio", tmp_path / "tmp", tmp_path / "home"
    for folder in (uploads, temp, home):
        folder.mkdir()
    env = {"GRADIO_TEMP_DIR": str(uploads), "TMPDIR": str(temp), "HOME": str(home)}
    face_jpeg, png, broken = (tmp_path / n for n in ("face.jpg", "face.png", "broken.jpg"))
    Image.fromarray(skimage_data.astronaut()).save(face_jpeg, quality=92)
    Image.open(face_jpeg).save(png)
    broken.write_bytes(face_jpeg.read_bytes()[:2000])

    with serve_app(env) as url:
        before = files_under(uploads, temp, home)
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        calls = 0
        if has_default("identity"):
            out = client.predict(handle_file(str(face_jpeg)), handle_file(str(png)), None, None,
                                 None, api_name="/verify")
            assert out[6]["verdict"] == "same"
            with pytest.raises(AppError, match="truncated or corrupt"):
                client.predict(handle_file(str(broken)), handle_file(str(face_jpeg)), None, None,
                               None, api_name="/verify")
            calls += 2
        if has_default("expression"):
            out = client.predict(handle_file(str(face_jpeg)), None, api_name="/expression")
            assert out[-1]["faces"]
            calls += 1
        assert calls
        after = files_under(uploads, temp, home)

    # Nothing new where Gradio and Python keep temporary files; no image anywhere (a font cache
    # that matplotlib builds in $HOME on first import holds no user data).
    new = sorted(str(p) for p in set(after) - set(before) if home not in p.parents)
    images = sorted(str(p) for p, head in after.items() if head.startswith(IMAGE_MAGIC))
    assert not new, f"files written while serving requests: {new}"
    assert not images, f"images on disk after the requests: {images}"
