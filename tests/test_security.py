"""The public app reads nothing but what was uploaded to it.

Attacks are sent as raw HTTP, the way any client can send them, to `python app.py`
running in a subprocess whose upload folder, temp folder and home are the test's own. For every
event that takes a file and every way of naming a file that is not this request's own upload, the
answer must be the one-line refusal, no byte of the named file may come back, no copy of it may
appear anywhere, and a local HTTP server named in the request must receive nothing.
(`gradio_client` cannot send these: it uploads whatever local path it is given, so it only ever
names real uploads; the legitimate `gradio_client` calls are in test_app.py and test_privacy.py.)
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from faceres import app
from faceres.app import uploads
from faceres.app.uploads import REFUSED, UploadRefused, admit, take_photo
from faceres.errors import ImageError
from faceres.settings import PROJECT_ROOT
from tests.test_app import has_default, serve_app

httpx = pytest.importorskip("httpx")
skimage_data = pytest.importorskip("skimage.data")

FILE_DATA = {"_type": "gradio.FileData"}
needs_models = pytest.mark.skipif(
    not has_default("identity") or not has_default("expression"),
    reason="no default identity and expression models in the registry yet",
)


# -- admit(): the rule, on hand-built requests ----------------------------------------------------


@pytest.fixture
def upload_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    (folder / "abc").mkdir(parents=True)
    return folder


def test_admit_takes_own_uploads_and_data_uris_once_each(upload_folder):
    own = upload_folder / "abc" / "face.jpg"
    own.write_bytes(b"x")
    image = gr.Image(type="filepath")
    uploads_set = {str(own)}
    ref = {"path": str(own), "meta": FILE_DATA}
    assert admit([ref, None], [image, image], uploads_set, upload_folder) == [str(own)]
    inline = {"path": None, "url": "data:image/png;base64,AAAA", "meta": FILE_DATA}
    assert admit([inline], [image], set(), upload_folder) == []
    assert admit(["resnet18-fer"], [gr.Dropdown()], set(), upload_folder) == []


def refused_requests(upload_folder: Path, outside: Path) -> dict[str, dict]:
    """One file reference per way of naming what is not the request's own upload."""
    link = upload_folder / "abc" / "link.jpg"
    link.symlink_to(outside)
    planted = upload_folder / "abc" / "planted.jpg"  # in the folder, never uploaded
    planted.write_bytes(b"x")
    return {
        "absolute": {"path": str(outside), "meta": FILE_DATA},
        "relative": {"path": os.path.relpath(outside), "meta": FILE_DATA},
        "dotdot": {"path": f"{upload_folder}/abc/../../{outside.name}", "meta": FILE_DATA},
        "symlink": {"path": str(link), "meta": FILE_DATA},
        "not uploaded": {"path": str(planted), "meta": FILE_DATA},
        "file url": {"path": f"file://{outside}", "meta": FILE_DATA},
        "http url": {"path": "http://127.0.0.1:9/face.jpg", "meta": FILE_DATA},
        "url, no upload": {"path": None, "url": "http://127.0.0.1:9/face.jpg", "meta": FILE_DATA},
        "no meta": {"path": str(outside)},
    }


def test_admit_refuses_everything_else(upload_folder, tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    image = gr.Image(type="filepath")
    cases = refused_requests(upload_folder, outside)
    # Even listed as uploads (as if Gradio had recorded them), links and escapes stay refused.
    listed = {c["path"] for c in cases.values() if c.get("path")} - {
        str(upload_folder / "abc" / "planted.jpg")
    }
    for name, ref in cases.items():
        with pytest.raises(UploadRefused, match="read only from this page's own uploads"):
            admit([ref], [image], listed, upload_folder)
            pytest.fail(f"{name} was admitted")


def test_admit_refuses_files_hidden_in_other_inputs_or_too_many(upload_folder):
    own = upload_folder / "abc" / "face.jpg"
    own.write_bytes(b"x")
    ref = {"path": str(own), "meta": FILE_DATA}
    with pytest.raises(UploadRefused):  # a file reference inside the faces JSON
        admit([{"photos": [{"preview": ref}]}], [gr.JSON()], {str(own)}, upload_folder)
    with pytest.raises(UploadRefused):  # two files where one photo goes
        admit([[ref, dict(ref)]], [gr.Image(type="filepath")], {str(own)}, upload_folder)


def test_a_multiple_file_input_takes_up_to_its_limit_of_own_uploads(upload_folder):
    many = gr.File(file_count="multiple")
    refs, listed = [], set()
    for k in range(uploads.MAX_MULTIPLE_FILES + 1):
        own = upload_folder / f"m{k}" / "face.jpg"
        own.parent.mkdir()
        own.write_bytes(b"x")
        refs.append({"path": str(own), "meta": FILE_DATA})
        listed.add(str(own))
    limit = uploads.MAX_MULTIPLE_FILES
    assert len(admit([refs[:limit]], [many], set(listed), upload_folder)) == limit
    with pytest.raises(ImageError, match=f"At most {limit} photos at a time \\({limit + 1} given"):
        admit([refs], [many], set(listed), upload_folder)  # one more: the app's own message
    with pytest.raises(UploadRefused):  # a server file among the uploads
        admit(
            [[*refs[:2], {"path": "/etc/hosts", "meta": FILE_DATA}]], [many], listed, upload_folder
        )
    with pytest.raises(UploadRefused):  # several files where one photo goes
        admit([refs[:2]], [gr.File()], set(listed), upload_folder)


def test_oversized_data_uri_is_refused_before_decoding():
    url = "data:image/jpeg;base64," + "A" * uploads.MAX_DATA_URI
    with pytest.raises(ImageError, match="too large"):
        admit([{"path": None, "url": url}], [gr.Image()], set(), "/nonexistent")
    with pytest.raises(ImageError, match="too large"):
        take_photo({"path": None, "url": url})


def test_handler_refuses_server_paths_even_when_called_directly(
    upload_folder, tmp_path, monkeypatch
):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_folder))
    outside = tmp_path / "secret.jpg"
    Image.fromarray(skimage_data.astronaut()).save(outside)
    for name, ref in refused_requests(upload_folder, outside).items():
        if name == "not uploaded":  # the upload ledger is the server's; see the launched tests
            continue
        with pytest.raises(ImageError, match="read only from this page's own uploads"):
            take_photo(ref)
            pytest.fail(f"{name} was read")
    assert outside.exists()


# -- the launched app ----------------------------------------------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """A local web server that counts every request it receives."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        self.wfile.write(SECRET_JPEG.read_bytes())

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


SECRET_JPEG = Path()  # set by the `server` fixture


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict]:
    """The app in a subprocess (own upload, temp and home folders), a secret photo outside its
    upload folder, and a recording web server on 127.0.0.1."""
    global SECRET_JPEG
    root = tmp_path_factory.mktemp("security")
    folders = {name: root / name for name in ("gradio", "tmp", "home", "private")}
    for folder in folders.values():
        folder.mkdir()
    SECRET_JPEG = folders["private"] / "secret.jpg"
    # A face the server can read but nobody uploaded, marked so its pixels can be recognised.
    face = skimage_data.astronaut().copy()
    face[:8, :8] = (255, 0, 255)
    Image.fromarray(face).save(SECRET_JPEG, quality=95)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    env = {
        "GRADIO_TEMP_DIR": str(folders["gradio"]),
        "TMPDIR": str(folders["tmp"]),
        "HOME": str(folders["home"]),
    }
    with serve_app(env) as url:
        yield {"url": url, "web": f"http://127.0.0.1:{web.server_address[1]}", **folders}
    web.shutdown()


def files_under(*roots: Path) -> dict[Path, str]:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in root.rglob("*")
        if p.is_file()
    }


def call(url: str, api: str, data: list, session: str | None = None) -> tuple[str, str]:
    """POST an event as any HTTP client can (in browser session `session`, if given); (event,
    payload) of its final message."""
    base = f"{url}gradio_api/call/{api}"
    body = {"data": data} | ({"session_hash": session} if session else {})
    reply = httpx.post(base, json=body, timeout=30)
    reply.raise_for_status()
    event, payload = "", ""
    with httpx.stream("GET", f"{base}/{reply.json()['event_id']}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
    return event, payload


def upload(url: str, path: Path) -> str:
    """Upload a file as the browser does; the server-side path it returns."""
    with path.open("rb") as f:
        reply = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f)}, timeout=30)
    reply.raise_for_status()
    return reply.json()[0]


def file_events(picture: dict) -> dict[str, list]:
    """Every event that takes a file, with `picture` in each of its file slots."""
    return {
        "verify": [picture, picture, None, None, None, None],
        "verify (photo 2)": [None, picture, None, None, None, None],
        "expression": [picture, None, None],
        "compare": [picture, None, None, None],
    }


def attacks(server: dict) -> dict[str, dict]:
    secret, gradio_dir = SECRET_JPEG, server["gradio"]
    planted = gradio_dir / "planted" / "face.jpg"  # in the upload folder, never uploaded
    planted.parent.mkdir(exist_ok=True)
    planted.write_bytes(secret.read_bytes())
    link = gradio_dir / "planted" / "link.jpg"
    if not link.is_symlink():
        link.symlink_to(secret)
    web = server["web"]
    return {
        "absolute path": {"path": str(secret), "meta": FILE_DATA},
        "relative path": {"path": os.path.relpath(secret, PROJECT_ROOT), "meta": FILE_DATA},
        "dotdot": {"path": f"{gradio_dir}/planted/../../private/secret.jpg", "meta": FILE_DATA},
        "symlink": {"path": str(link), "meta": FILE_DATA},
        "upload folder, not uploaded": {"path": str(planted), "meta": FILE_DATA},
        "file url as path": {"path": f"file://{secret}", "meta": FILE_DATA},
        "file url, no upload": {"path": None, "url": f"file://{secret}", "meta": FILE_DATA},
        "http url as path": {"path": f"{web}/a.jpg", "meta": FILE_DATA},
        "http url, no upload": {"path": None, "url": f"{web}/b.jpg", "meta": FILE_DATA},
        "path and url": {"path": str(secret), "url": f"{web}/c.jpg", "meta": FILE_DATA},
        "without meta": {"path": str(secret)},
    }


def secret_leaked(payload: str) -> bool:
    """Whether an answer carries a picture, or the secret file's name or bytes."""
    raw = base64.b64encode(SECRET_JPEG.read_bytes()[:3000]).decode()[:200]
    return "data:image" in payload or "secret" in payload or raw in payload


@needs_models
def test_server_files_links_and_urls_are_refused_for_every_event(server):
    cases = attacks(server)
    before = files_under(server["gradio"], server["tmp"], server["home"])
    Recorder.hits.clear()
    for attack, picture in cases.items():
        for event, data in file_events(picture).items():
            name, payload = call(server["url"], event.split(" ")[0], data)
            assert name == "error" and json.loads(payload)["error"] == REFUSED, (
                f"{attack} → /{event}: {payload[:300]}"
            )
            assert not secret_leaked(payload), f"{attack} → /{event} leaked the file"
    after = files_under(server["gradio"], server["tmp"], server["home"])
    assert after == before, "files appeared or changed while refusing"
    assert not Recorder.hits, f"the server fetched {Recorder.hits}"
    assert SECRET_JPEG.exists()


@needs_models
def test_an_upload_serves_one_request_only(server, tmp_path):
    photo = tmp_path / "mine.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=90)
    path = upload(server["url"], photo)
    mine = {"path": path, "orig_name": "mine.jpg", "meta": FILE_DATA}
    name, payload = call(server["url"], "expression", [mine, None, None])
    assert name == "complete" and json.loads(payload)[-1]["faces"], payload[:300]
    # The same path named again (another client who learnt it, or a replay) is refused, and the
    # file is gone from the upload folder.
    name, payload = call(server["url"], "expression", [mine, None, None])
    assert name == "error" and json.loads(payload)["error"] == REFUSED
    assert not Path(path).exists()


@needs_models
def test_pick_faces_accepts_only_the_pictures_it_made(server, tmp_path):
    photo, other = tmp_path / "mine.jpg", tmp_path / "other.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=90)
    Image.fromarray(skimage_data.camera()).save(other, quality=90)
    refs = [{"path": upload(server["url"], p), "meta": FILE_DATA} for p in (photo, other)]
    name, payload = call(server["url"], "verify", [*refs, None, None, None, None])
    assert name == "complete" and json.loads(payload)[6]["verdict"] == "different"
    faces = json.loads(payload)[7]
    Recorder.hits.clear()
    for picture in (f"{server['web']}/p.jpg", f"file://{SECRET_JPEG}", '" onerror="alert(1)'):
        forged = json.loads(json.dumps(faces))
        forged["photos"][0]["preview"] = picture
        name, payload = call(server["url"], "pick_faces", [forged, 1, 1])
        assert name == "error" and json.loads(payload)["error"] == REFUSED, payload[:300]
    hidden = json.loads(json.dumps(faces))
    hidden["photos"][0]["faces"][0]["crop"] = {"path": str(SECRET_JPEG), "meta": FILE_DATA}
    name, payload = call(server["url"], "pick_faces", [hidden, 1, 1])
    assert name == "error" and json.loads(payload)["error"] == REFUSED
    assert not Recorder.hits


def png_bomb(side: int = 30_000) -> bytes:
    """A tiny PNG that decodes to `side`² pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\0" + b"\0" * (side // 8)  # 1-bit grey rows
    body = zlib.compress(row * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


@needs_models
def test_bombs_and_oversized_inputs_get_a_message(server, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size < 200_000
    ref = {"path": upload(server["url"], bomb), "meta": FILE_DATA}
    name, payload = call(server["url"], "expression", [ref, None, None])
    assert name == "error" and "too large" in json.loads(payload)["error"]
    inline = {
        "path": None,
        "url": "data:image/png;base64," + base64.b64encode(png_bomb()).decode(),
        "meta": FILE_DATA,
    }
    name, payload = call(server["url"], "expression", [inline, None, None])
    assert name == "error" and "too large" in json.loads(payload)["error"]
    huge = {
        "path": None,
        "url": "data:image/jpeg;base64," + "A" * (uploads.MAX_DATA_URI + 4),
        "meta": FILE_DATA,
    }
    name, payload = call(server["url"], "expression", [huge, None, None])
    assert name == "error" and "too large" in json.loads(payload)["error"]
    photo = tmp_path / "a.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    two = [{"path": upload(server["url"], photo), "meta": FILE_DATA}] * 2
    name, payload = call(server["url"], "expression", [two, None, None])
    assert name == "error" and json.loads(payload)["error"] == REFUSED
    assert not any(server["gradio"].rglob("bomb.png"))


@needs_models
def test_a_burst_from_one_client_is_queued_not_crashed(server):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(skimage_data.astronaut())[::2, ::2]).save(buffer, "JPEG")
    inline = {
        "path": None,
        "meta": FILE_DATA,
        "url": "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode(),
    }
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: call(server["url"], "expression", [inline, None, None]), range(32))
        )
    for name, payload in answers:
        assert name == "complete" or (name == "error" and json.loads(payload).get("error")), (
            payload[:300]
        )
    assert sum(name == "complete" for name, _ in answers) >= 1
    assert httpx.get(server["url"], timeout=10).status_code == 200


@needs_models
def test_no_photo_stays_in_the_session_after_a_request(tmp_path, monkeypatch):
    """The in-process server's session store holds no input or output picture afterwards."""
    from gradio_client import Client, handle_file

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    photo, other = tmp_path / "mine.jpg", tmp_path / "other.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=90)
    Image.fromarray(skimage_data.camera()).save(other, quality=90)
    demo = app.build_demo()
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        out = client.predict(
            handle_file(str(photo)), handle_file(str(other)), None, None, None, api_name="/verify"
        )
        assert out[6]["verdict"] == "different"  # astronaut vs cameraman
        client.predict(out[7], 1, 1, api_name="/pick_faces")
        sessions = demo.state_holder.session_data
        assert sessions, "the test expects Gradio to keep a session for the client"
        kept = [json.dumps(getattr(s, "config_values", {}), default=str) for s in sessions.values()]
        # The app's own pictures (the Models tab's chart, a PNG) may be there; no JPEG preview or
        # crop of a photo (the only pictures the handlers make) and no upload's name may be.
        assert not [k for k in kept if "data:image/jpeg" in k or photo.name in k or other.name in k]
    finally:
        demo.close()


# -- photos held per browser session (faceres.app.held) -------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _held_request(upload_folder: Path, name: str, data: bytes) -> tuple[dict, str]:
    own = upload_folder / "abc" / name
    own.parent.mkdir(exist_ok=True)
    own.write_bytes(data)
    return {"path": str(own), "orig_name": name, "meta": FILE_DATA}, str(own)


def test_a_held_photo_serves_its_session_only(upload_dir):
    upload_folder = upload_dir
    """Session A's upload is read into memory and deleted from disk; A may name it again, B
    (which knows the path) is refused, and B's refusal costs A nothing."""
    from faceres.app.held import PhotoStore
    from faceres.app.uploads import hold_photos

    photo = gr.Image(type="filepath")
    store = PhotoStore(max_bytes=10_000, session_bytes=5_000)
    ref, path = _held_request(upload_folder, "face.jpg", b"jpeg-bytes")
    listed = {path}
    (first,) = hold_photos([ref], [photo], "A", store, listed, upload_folder)
    assert (first.data, first.orig_name) == (b"jpeg-bytes", "face.jpg")
    assert not Path(path).exists() and not listed  # off the disk and out of the ledger
    (again,) = hold_photos([ref], [photo], "A", store, listed, upload_folder)
    assert again == first
    with pytest.raises(UploadRefused):
        hold_photos([ref], [photo], "B", store, listed, upload_folder)
    with pytest.raises(UploadRefused):  # no session (a direct call): nothing is held for it
        hold_photos([ref], [photo], None, store, listed, upload_folder)
    assert store.get("A", path) == b"jpeg-bytes"


def test_held_photos_expire_and_go_with_their_page():
    from faceres.app.held import PhotoStore

    clock = Clock()
    store = PhotoStore(max_bytes=10_000, session_bytes=5_000, idle_s=900, clock=clock)
    store.hold("A", "a.jpg", b"a" * 10)
    store.hold("B", "b.jpg", b"b" * 10)
    clock.now = 899.0
    assert store.get("A", "a.jpg") == b"a" * 10  # used: its idle time starts again
    clock.now = 1000.0
    store.sweep()  # what the sweeper thread does every minute
    assert store.get("B", "b.jpg") is None and store.get("A", "a.jpg") == b"a" * 10
    store.drop("A")  # the page closed (demo.unload)
    assert store.get("A", "a.jpg") is None and store.nbytes == 0


def test_held_photos_stay_under_the_cap_and_the_newest_work():
    """Many sessions: the total never passes the cap, the least recently used go first, one
    session never holds more than its share, and the newest sessions' photos are there."""
    from faceres.app.held import PhotoStore

    store = PhotoStore(max_bytes=1_000, session_bytes=300)
    for k in range(50):
        store.hold(f"s{k}", "p.jpg", bytes(100))
        assert store.nbytes <= 1_000
    assert {f"s{k}" for k in range(40, 50)} == store.sessions()
    for k in range(5):
        store.hold("greedy", f"{k}.jpg", bytes(100))
    assert len(store.keys("greedy")) == 3 and store.keys("greedy") == {"2.jpg", "3.jpg", "4.jpg"}
    assert not store.hold("huge", "big.jpg", bytes(301))  # larger than a session's share
    assert store.nbytes <= 1_000 and store.get("s49", "p.jpg") == bytes(100)


def test_an_unknown_path_after_expiry_is_refused_with_the_remedy(upload_dir):
    upload_folder = upload_dir
    from faceres.app.held import PhotoStore
    from faceres.app.uploads import hold_photos

    clock = Clock()
    photo = gr.Image(type="filepath")
    store = PhotoStore(max_bytes=10_000, session_bytes=5_000, idle_s=900, clock=clock)
    ref, path = _held_request(upload_folder, "face.jpg", b"jpeg-bytes")
    hold_photos([ref], [photo], "A", store, {path}, upload_folder)
    clock.now = 901.0
    store.sweep()
    with pytest.raises(UploadRefused, match="upload the photo again"):
        hold_photos([ref], [photo], "A", store, set(), upload_folder)


def server_process(url: str):
    """The psutil process listening on `url`'s port."""
    import psutil

    port = int(url.rsplit(":", 1)[1].strip("/"))
    return next(
        psutil.Process(c.pid)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    )


@needs_models
def test_gradio_keeps_the_state_of_at_most_the_session_capacity(tmp_path):
    """Gradio copies every component's config for each browser session (about 0.25 MB for this
    app) and by default keeps 10,000 sessions. Launched with `FACERES_APP_SESSIONS=20`, 400
    sessions calling once each grow the server by less than 40 MB (99 MB measured when Gradio
    kept them all, 8 MB with the capacity), and the first session, whose Gradio state is gone
    by then, still gets its held photo analysed: the app keeps nothing a session needs in
    Gradio's state."""
    photo = tmp_path / "face.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=90)
    with serve_app({"FACERES_APP_SESSIONS": "20"}) as url:
        server = server_process(url)
        first = {"path": upload(url, photo), "orig_name": "face.jpg", "meta": FILE_DATA}
        assert call(url, "expression", [first, None, None], "first")[0] == "complete"
        start = server.memory_info().rss
        for k in range(400):
            call(url, "expression", [None, None, None], f"visitor{k}")
        grown = (server.memory_info().rss - start) / 1e6
        event, payload = call(url, "expression", [first, None, None], "first")
    assert grown < 40, f"server memory grew {grown:.0f} MB for 400 sessions"
    assert event == "complete" and "happy" in payload, payload[:300]


@pytest.mark.slow
@pytest.mark.skipif(not has_default("expression"), reason="no default expression model")
def test_many_sessions_holding_photos_stay_under_the_memory_cap(tmp_path):
    """A launched app capped at 48 MB of held photos (`FACERES_PHOTO_MEMORY_MB`): 14 sessions
    each upload an 11 MB photo (154 MB in all). The server's memory grows by at most the cap
    plus 40 MB of slack (without the cap it would hold all 154 MB), the newest session's photo
    is still held (naming it again reaches the model: "No face found") and the oldest one's was
    evicted (naming it again is refused with the remedy)."""
    cap_mb, sessions, slack_mb = 48, 14, 40
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (1900, 1900, 3), dtype=np.uint8)).save(noise)
    assert 10e6 < noise.stat().st_size < cap_mb * 1e6 / 4  # within one session's share

    def session(url: str, k: int) -> tuple[str, dict]:
        """A browser session of its own: its upload (distinct bytes after the PNG's end)."""
        data = noise.read_bytes() + f"session {k}".encode()
        reply = httpx.post(f"{url}gradio_api/upload", files={"files": ("n.png", data)}, timeout=60)
        return f"s{k}", {"path": reply.json()[0], "orig_name": "n.png", "meta": FILE_DATA}

    def expression(url: str, session_hash: str, ref: dict) -> str:
        """What the app answers that session: the summary (the photo reached the model) or
        the error."""
        return ": ".join(call(url, "expression", [ref, None, None], session_hash))

    with serve_app({"FACERES_PHOTO_MEMORY_MB": str(cap_mb)}) as url:
        server = server_process(url)
        opened = [session(url, 0)]
        assert "No face found" in expression(url, *opened[0])
        start = server.memory_info().rss
        for k in range(1, sessions):
            opened.append(session(url, k))
            assert "No face found" in expression(url, *opened[-1])
        grown = (server.memory_info().rss - start) / 1e6
        newest, oldest = expression(url, *opened[-1]), expression(url, *opened[0])
    assert grown <= cap_mb + slack_mb, f"server memory grew {grown:.0f} MB"
    assert "No face found" in newest
    assert "upload the photo again" in oldest
