"""1:N: the face index (SQLite + FAISS), search, grouping and their evaluation, checked against
scikit-learn and hand-computed cases; a build killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceres.cli import main
from faceres.eval.identify import cluster_metrics, identification_metrics, split_people
from faceres.search.query import cluster_embeddings
from faceres.search.store import FaceStore, IndexedFace, build_faiss
from tests.test_app import has_default

skdata = pytest.importorskip("skimage.data")
needs_identity = pytest.mark.skipif(
    not has_default("identity"), reason="no default identity model in the registry yet"
)


def collection(folder: Path, copies: int = 3) -> Path:
    """Person folders of test photos: the astronaut and the cameraman (enlarged twice) in
    `copies` slightly different versions each, a photo without a face and a broken file."""
    camera = np.repeat(np.repeat(skdata.camera(), 2, axis=0), 2, axis=1)
    people = {"astronaut": skdata.astronaut(), "camera": np.stack([camera] * 3, axis=2)}
    for name, rgb in people.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            shade = np.clip(rgb.astype(int) + 6 * k, 0, 255).astype(np.uint8)
            Image.fromarray(shade).save(folder / name / f"{name}_{k}.jpg", quality=90)
    (folder / "other").mkdir(exist_ok=True)
    Image.new("RGB", (120, 90), (127, 127, 127)).save(folder / "other" / "blank.png")
    (folder / "other" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def rows(index: Path) -> list[tuple]:
    """Every face row of an index, without its row id (order-free comparison)."""
    db = sqlite3.connect(index / "faces.sqlite")
    try:
        return sorted(
            db.execute(
                "SELECT path, face, box, landmarks, detector, score, quality, vector FROM faces"
            )
        )
    finally:
        db.close()


def test_faiss_search_ranks_as_scikit_learn():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1000, 1300, dtype=np.int64)
    index = build_faiss(ids, vecs)
    probes = vecs[:5] + 0.1 * rng.normal(size=(5, 16)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    sims, found = index.search(probes, 4)
    dist, ref = NearestNeighbors(n_neighbors=4, metric="cosine").fit(vecs).kneighbors(probes)
    np.testing.assert_array_equal(found, ids[ref])
    np.testing.assert_allclose(sims, 1 - dist, atol=1e-5)


def test_grouping_by_hand():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    near = lambda v, w: (v + w) / np.linalg.norm(v + w)  # noqa: E731
    vecs = np.stack([a, near(a, 0.05 * b), b, near(b, 0.05 * a), near(b, 0.08 * a), [0, 0, 1]])
    # a and its neighbour (cos 0.999); b and two neighbours; the last matches nobody
    labels = cluster_embeddings(vecs, threshold=0.9)
    assert labels.tolist() == [1, 1, 0, 0, 0, -1]  # the largest group first


def test_cluster_metrics_match_scikit_learns_pair_counts():
    from sklearn.metrics.cluster import pair_confusion_matrix

    truth = ["a", "a", "a", "b", "b", "c"]
    labels = np.array([0, 0, 1, 1, 1, -1])
    m = cluster_metrics(labels, truth)
    (tn, fp), (fn, tp) = pair_confusion_matrix(truth, [0, 0, 1, 1, 1, 2])
    assert m["pairwise_precision"] == pytest.approx(tp / (tp + fp))
    assert m["pairwise_recall"] == pytest.approx(tp / (tp + fn))
    # BCubed by hand: precision per item 1, 1, 1/3, 2/3, 2/3, 1; recall 2/3, 2/3, 1/3, 1, 1, 1
    assert m["bcubed_precision"] == pytest.approx((1 + 1 + 1 / 3 + 2 / 3 + 2 / 3 + 1) / 6)
    assert m["bcubed_recall"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1 + 1) / 6)
    assert (m["clusters_found"], m["unassigned"], m["clusters_true"]) == (2, 1, 3)


def test_identification_metrics_by_hand():
    gallery = np.eye(3)  # people a, b, c
    genuine = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.8], [0, 0.6, 0.5]])
    genuine /= np.linalg.norm(genuine, axis=1, keepdims=True)
    impostor = np.array([[0.6, 0.8, 0.0]] + [[0.1, 0.0, 0.99]] * 99)
    impostor /= np.linalg.norm(impostor, axis=1, keepdims=True)
    m = identification_metrics(gallery, ["a", "b", "c"], genuine, ["a", "b", "b"], impostor)
    # probe 1 → a (right), probe 2 → c first, b second (wrong at rank 1), probe 3 → b (right)
    assert m["rank1"] == pytest.approx(2 / 3) and m["rank5"] == 1.0
    # 1% of 100 impostor best scores: the threshold is the highest, 0.99 / |row| ≈ 0.995
    assert m["far_threshold"] == pytest.approx(0.99 / np.hypot(0.1, 0.99))
    # probe 1 scores 0.994 (not above it), probe 3 0.768: neither is accepted
    assert m["dir_at_far_1e-2"] == 0.0


def test_split_people_follows_the_protocol(tmp_path):
    for name, n in (("ann", 3), ("bob", 1), ("cy", 2)):
        (tmp_path / name).mkdir()
        for k in range(n):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{name}_{k}.png")
    gallery, genuine, impostor, person = split_people(tmp_path)
    assert [p.name for p in gallery] == ["ann_0.png", "cy_0.png"]
    assert [p.name for p in genuine] == ["ann_1.png", "ann_2.png", "cy_1.png"]
    assert [p.name for p in impostor] == ["bob_0.png"] and person[impostor[0]] == "bob"


@needs_identity
def test_build_search_cluster_and_remove(tmp_path, capsys):
    photos = collection(tmp_path / "photos")
    index = tmp_path / "index"
    assert main(["index", "build", str(photos), "--out", str(index), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["images"], summary["faces"], summary["failed"]) == (8, 6, 1)
    store = FaceStore.open(index)
    assert [p for p, _ in store.errors()] == [str(photos / "other" / "broken.jpg")]
    store.close()
    probe = photos / "astronaut" / "astronaut_1.jpg"
    assert main(["search", str(probe), "--index", str(index), "--top", "4", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    matches = result["matches"]
    assert result["probe"] == str(probe) and len(matches) == 4
    assert [Path(m["path"]).parent.name for m in matches[:3]] == ["astronaut"] * 3
    assert matches[0]["similarity"] == pytest.approx(1.0, abs=1e-5)  # the probe itself
    assert [m["verdict"] for m in matches] == ["same", "same", "same", "different"]
    assert main(["cluster", "--index", str(index), "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert sorted({Path(f["path"]).parent.name for f in g}.pop() for g in groups) == [
        "astronaut",
        "camera",
    ]
    assert all(len({Path(f["path"]).parent.name for f in g}) == 1 for g in groups)
    assert main(["index", "remove", str(probe), "--index", str(index)]) == 0
    store = FaceStore.open(index)
    assert store.count() == 5 and store.faiss_index().ntotal == 5
    store.close()


@needs_identity
def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["search", str(tmp_path / "x.jpg"), "--index", str(tmp_path / "none")]) == 2
    assert "not a face index" in capsys.readouterr().err
    assert main(["index", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "i")]) == 2
    assert "No such file or folder" in capsys.readouterr().err


def small_index(folder: Path) -> Path:
    """An index of three hand-made faces (no model run), its FAISS file saved."""
    store = FaceStore.open(folder, model="dlib-resnet29-face", dim=3)
    quality = {"eye_distance": 40.0, "sharpness": 100.0, "yaw": 0.0, "score": 0.9}
    for i, vec in enumerate(np.eye(3, dtype=np.float32)):
        face = IndexedFace(f"p{i}.jpg", 1, [0.0, 0.0, 9.0, 9.0], [], "yunet", 0.9, quality, vec)
        store.add_image(f"p{i}.jpg", None, [face])
    store.faiss_index()
    store.close()
    return folder


def test_a_damaged_faiss_file_is_rebuilt_from_sqlite(tmp_path):
    """SQLite holds every vector: a damaged vectors.faiss costs nothing (it is rebuilt)."""
    index = small_index(tmp_path / "index")
    (index / "vectors.faiss").write_bytes(b"\0garbage" * 100)
    store = FaceStore.open(index)
    rebuilt = store.faiss_index()
    _, ids = rebuilt.search(np.eye(3, dtype=np.float32), 1)
    assert sorted(ids.ravel().tolist()) == sorted(store.vectors()[0].tolist())
    store.close()


def test_a_damaged_sqlite_file_is_one_line_naming_it_and_the_remedy(tmp_path, capsys):
    index = small_index(tmp_path / "index")
    for name in ("faces.sqlite-wal", "faces.sqlite-shm"):
        (index / name).unlink(missing_ok=True)
    (index / "faces.sqlite").write_bytes(b"not a database at all" * 200)
    assert main(["cluster", "--index", str(index)]) == 2
    err = capsys.readouterr().err
    assert "faces.sqlite is damaged" in err and "faceres index build" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


SLOW_WRITER = """
import sys, time
import numpy as np
from faceres.search.store import FaceStore, IndexedFace
store = FaceStore.open(sys.argv[1], writer=True)
print("locked", time.time(), flush=True)
time.sleep(float(sys.argv[3]))
quality = {"eye_distance": 40.0, "sharpness": 100.0, "yaw": 0.0, "score": 0.9}
vec = np.array([0.6, 0.8, 0.0], np.float32)
name = sys.argv[2]
face = IndexedFace(name, 1, [0.0, 0.0, 9.0, 9.0], [], "yunet", 0.9, quality, vec)
store.add_image(name, None, [face])
store.close()
print("released", time.time(), flush=True)
"""


def test_two_writers_take_turns_and_lose_nothing(tmp_path):
    """Two commands writing one index at once: the second waits for the first's lock (and says
    so), both images are in, once each."""
    index = small_index(tmp_path / "index")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = [sys.executable, "-c", SLOW_WRITER, str(index)]
    first = subprocess.Popen([*run, "a.jpg", "3"], stdout=subprocess.PIPE, text=True, env=env)
    assert first.stdout.readline().startswith("locked")
    second = subprocess.run(
        [*run, "b.jpg", "0"], capture_output=True, text=True, env=env, timeout=120
    )
    out, _ = first.communicate(timeout=120)
    released = float(out.split()[-1])
    locked_second = float(second.stdout.split()[1])
    assert locked_second >= released  # it waited for the first writer
    assert "another command is writing" in second.stderr
    store = FaceStore.open(index)
    paths = [r[0] for r in store.db.execute("SELECT path FROM images ORDER BY path")]
    assert paths == ["a.jpg", "b.jpg", "p0.jpg", "p1.jpg", "p2.jpg"]
    assert store.count() == 5 and store.faiss_index().ntotal == 5
    store.close()


FULL_DISK_WRITER = """
import resource, signal, sys
import numpy as np
from faceres.errors import DataError
from faceres.search.store import FaceStore, IndexedFace
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as the CLI does: a write error, not a kill
store = FaceStore.open(sys.argv[1], writer=True)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
quality = {"eye_distance": 40.0, "sharpness": 100.0, "yaw": 0.0, "score": 0.9}
written = 0
try:
    for i in range(100_000):
        vec = np.array([1.0, 0.0, 0.0], np.float32)
        face = IndexedFace(f"x{i}.jpg", 1, [0.0, 0.0, 9.0, 9.0], [], "yunet", 0.9, quality, vec)
        store.add_image(f"x{i}.jpg", None, [face])
        written += 1
except DataError as exc:
    print(written, exc, sep="\t")
"""


def test_a_full_disk_is_one_error_and_keeps_what_was_written(tmp_path):
    """Writes past a file-size limit (a full disk, as RLIMIT_FSIZE makes it): one DataError that
    says what to do, and the index opens afterwards with every image written before."""
    index = small_index(tmp_path / "index")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    limit = 400_000
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(index), str(limit)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    written, message = out.stdout.strip().split("\t")
    assert int(written) > 10 and "free some space" in message and "--resume" in message
    store = FaceStore.open(index)
    assert store.count() == 3 + int(written)  # every image written before the error
    store.close()


REMOVER = """
import sys
from faceres.search.store import FaceStore
store = FaceStore.open(sys.argv[1], writer=True)
print("removing", flush=True)
store.remove([f"x{i}.jpg" for i in range(int(sys.argv[2]))])
store.faiss_index()
store.close()
"""


def test_a_killed_remove_leaves_the_index_whole(tmp_path):
    """`index remove` killed with SIGKILL while it deletes: the index reopens consistent (one
    transaction: all of the images gone or none, no face without its image) and its FAISS
    index matches SQLite again."""
    index = small_index(tmp_path / "index")
    count = 5000
    store = FaceStore.open(index, writer=True)
    quality = {"eye_distance": 40.0, "sharpness": 100.0, "yaw": 0.0, "score": 0.9}
    vec = np.array([0.0, 0.6, 0.8], np.float32)
    with store.db:  # one transaction, for speed
        for i in range(count):
            face = IndexedFace(f"x{i}.jpg", 1, [0.0, 0.0, 9.0, 9.0], [], "yunet", 0.9, quality, vec)
            store._write_image(f"x{i}.jpg", None, [face], None)
    store.faiss_index()
    store.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", REMOVER, str(index), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "removing"
    time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = FaceStore.open(index)
    images = store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    orphans = store.db.execute(
        "SELECT COUNT(*) FROM faces WHERE path NOT IN (SELECT path FROM images)"
    ).fetchone()[0]
    assert images in (3, 3 + count) and orphans == 0
    assert store.count() == images and store.faiss_index().ntotal == images
    store.close()


KILLABLE_BUILD = """
import sys
import faceres.search.indexing as build
build.BATCH_IMAGES = 1  # one image per batch, so a kill lands between images
build.build_index([sys.argv[1]], sys.argv[2], resume=True)
"""


@needs_identity
def test_a_killed_build_resumes_to_the_same_index(tmp_path):
    photos = collection(tmp_path / "photos", copies=6)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = [sys.executable, "-c", KILLABLE_BUILD, str(photos)]
    subprocess.run([*run, str(whole)], check=True, env=env, timeout=300)
    proc = subprocess.Popen([*run, str(killed)], env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        db = killed / "faces.sqlite"
        if db.is_file():
            try:
                with sqlite3.connect(db) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 3:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(rows(killed))
    assert 0 < partial < len(rows(whole)), "the kill did not land halfway"
    subprocess.run([*run, str(killed)], check=True, env=env, timeout=300)
    assert rows(killed) == rows(whole)
    store = FaceStore.open(killed)
    assert store.faiss_index().ntotal == len(rows(whole))
    store.close()


@needs_identity
@pytest.mark.slow
def test_the_ray_engine_gives_the_local_engines_faces(tmp_path):
    pytest.importorskip("ray.data", reason="the Ray engine needs ray[data]")
    from faceres.search.indexing import build_index

    photos = collection(tmp_path / "photos", copies=2)
    local = build_index([photos], tmp_path / "local", detector="yunet")
    ray = build_index([photos], tmp_path / "ray", detector="yunet", engine="ray")
    assert {k: ray[k] for k in ("images", "faces", "failed")} == {
        k: local[k] for k in ("images", "faces", "failed")
    }
    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert [r[:7] for r in a] == [r[:7] for r in b]  # paths, numbers, boxes, landmarks, quality
    va = np.stack([np.frombuffer(r[7], np.float32) for r in a])
    vb = np.stack([np.frombuffer(r[7], np.float32) for r in b])
    np.testing.assert_allclose(va, vb, atol=1e-5)


@needs_identity
@pytest.mark.slow
def test_a_ray_build_that_loses_the_node_embedding_it_completes(tmp_path, monkeypatch):
    """A simulated cluster on this machine (`ray.cluster_utils.Cluster`: a head without CPUs and
    two worker nodes): the worker node running the model actor is removed in the middle of
    `index build --engine ray`; Ray Data restarts the actor on the other node and retries its
    batch, and the index equals the local engine's, nothing lost or twice."""
    pytest.importorskip("ray.data", reason="the Ray engine needs ray[data]")
    import ray
    from ray._private import state as ray_state
    from ray.cluster_utils import Cluster

    from faceres.search import indexing
    from faceres.search.indexing import build_index

    photos = collection(tmp_path / "photos", copies=6)
    local = build_index([photos], tmp_path / "local", detector="yunet")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=2, object_store_memory=80 * 2**20) for _ in range(2)]
    monkeypatch.setattr(indexing, "BATCH_IMAGES", 1)  # one image a batch: the loss lands mid-build
    removed: list[str] = []

    def remove_the_actors_node() -> None:
        """Once the model actor is up (its batches under way), remove the node it runs on."""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not removed:
            alive = [  # the GCS's actor table: no dashboard needed
                a["Address"]["NodeID"]
                for a in ray_state.actors().values()
                if a["State"] == "ALIVE" and "RayEmbedder" in a["ActorClassName"]
            ]
            if alive:
                node = next(w for w in workers if w.node_id == alive[0])
                cluster.remove_node(node)
                removed.append(node.node_id)
            time.sleep(0.1)

    ray.shutdown()  # a local instance an earlier test started
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        killer = threading.Thread(target=remove_the_actors_node)
        killer.start()
        built = build_index([photos], tmp_path / "ray", detector="yunet", engine="ray")
        killer.join()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert removed, "the node was not removed during the build"
    assert {k: built[k] for k in ("images", "faces", "failed")} == {
        k: local[k] for k in ("images", "faces", "failed")
    }
    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert [r[:7] for r in a] == [r[:7] for r in b]
