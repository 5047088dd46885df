"""A face index on disk: every face's metadata and embedding in SQLite (the source of truth),
and a FAISS index of the embeddings built from it for search.

Layout of an index folder: `faces.sqlite` (tables `meta`, `images`, `faces`) and
`vectors.faiss` (an `IndexIDMap2` whose ids are the faces' row ids). Each image is written in
one SQLite transaction with its faces, so a build killed at any moment leaves whole images or
nothing; the FAISS file is rewritten (temporary file, then rename) from SQLite whenever it does
not match the faces table, so it cannot drift from it.

>>> store = FaceStore.open("photos.index", model="dlib-resnet29-face", dim=128)
>>> store.count()
0
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from faceres.errors import DataError

log = logging.getLogger(__name__)

EXACT_LIMIT = 200_000
"""Up to this many faces the FAISS index is exact (inner product over all vectors); above it,
HNSW (approximate: `benchmarks/search_scale.py` measures its recall)."""
HNSW_M = 32
HNSW_EF_SEARCH = 512
"""HNSW search depth: `benchmarks/search_scale.py` measures recall@10 and latency against it."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY, sha256 TEXT, faces INTEGER NOT NULL, error TEXT
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL REFERENCES images(path) ON DELETE CASCADE,
    face INTEGER NOT NULL, box TEXT NOT NULL, landmarks TEXT NOT NULL, detector TEXT NOT NULL,
    score REAL NOT NULL, quality TEXT NOT NULL, vector BLOB NOT NULL, UNIQUE (path, face)
);
"""


@dataclass(frozen=True)
class IndexedFace:
    """One indexed face: its image, number in that image (from 1, largest first), box,
    landmarks, detector, detector score, quality record and L2-normalised embedding."""

    path: str
    face: int
    box: list[float]
    landmarks: list[list[float]]
    detector: str
    score: float
    quality: dict
    vector: np.ndarray


def _write_lock(folder: Path) -> FileLock:
    """The index's write lock, acquired (after a note on stderr when another command holds it)."""
    lock = FileLock(str(folder / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another command is writing %s: waiting for it to finish", folder)
        lock.acquire()
    return lock


def _read_faiss(path: Path):
    """The FAISS index saved at `path`; None when there is none or it cannot be read (a damaged
    file is rebuilt from SQLite, which holds every vector)."""
    import faiss

    if not path.is_file():
        return None
    try:
        index = faiss.read_index(str(path))
        faiss.vector_to_array(index.id_map)
    except (RuntimeError, AttributeError):
        return None
    return index


class FaceStore:
    """The SQLite store and FAISS index of one index folder."""

    def __init__(self, folder: Path, db: sqlite3.Connection, lock: FileLock | None = None) -> None:
        self.folder = folder
        self.db = db
        self.lock = lock

    @classmethod
    def open(
        cls,
        folder: str | Path,
        model: str | None = None,
        dim: int | None = None,
        writer: bool = False,
    ):
        """Open (creating when `model` and `dim` are given) the index in `folder`; an existing
        index built with another model refuses `model`. A `writer` holds the index's write lock
        until `close`: a second writer waits for it (two `faceres index add` at once)."""
        folder = Path(folder)
        db_path = folder / "faces.sqlite"
        if not db_path.is_file() and model is None:
            raise DataError(f"{folder} is not a face index (no faces.sqlite); build one first.")
        folder.mkdir(parents=True, exist_ok=True)
        lock = _write_lock(folder) if writer else None
        db = sqlite3.connect(db_path)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(SCHEMA)
            store = cls(folder, db, lock)
            stored = store.meta()
        except sqlite3.DatabaseError as exc:
            db.close()
            if lock:
                lock.release()
            raise DataError(
                f"{db_path} is damaged ({exc}): build the index again into a new folder "
                f"(faceres index build PATHS --out NEW_FOLDER)."
            ) from None
        if model is not None:
            if stored and stored.get("model") != model:
                store.close()
                raise DataError(
                    f"{folder} was built with {stored.get('model')}, not {model}; "
                    "use another --out or the same --model."
                )
            with db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (model,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(dim),))
        return store

    def meta(self) -> dict[str, str]:
        """The index's model and embedding size."""
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def done(self) -> set[str]:
        """Paths already in the index (indexed, or recorded as failed)."""
        return {row[0] for row in self.db.execute("SELECT path FROM images")}

    def count(self) -> int:
        """Faces in the index."""
        return self.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]

    def add_image(
        self, path: str, sha256: str | None, faces: Sequence[IndexedFace], error: str | None = None
    ) -> None:
        """Write one image and its faces (or its error) in one transaction, replacing any
        earlier entry for `path`. A full disk (or a file-size limit) is a DataError; every
        image written before stays in the index."""
        try:
            self._write_image(path, sha256, faces, error)
        except (sqlite3.OperationalError, OSError) as exc:
            raise DataError(
                f"Could not write {path} into the index {self.folder}: {exc}. The images written "
                "before it are kept: free some space, then run the same command with --resume."
            ) from None

    def _write_image(
        self, path: str, sha256: str | None, faces: Sequence[IndexedFace], error: str | None
    ) -> None:
        with self.db:
            self.db.execute("DELETE FROM images WHERE path = ?", (path,))
            self.db.execute(
                "INSERT INTO images VALUES (?, ?, ?, ?)", (path, sha256, len(faces), error)
            )
            self.db.executemany(
                "INSERT INTO faces (path, face, box, landmarks, detector, score, quality, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        f.path,
                        f.face,
                        json.dumps(f.box),
                        json.dumps(f.landmarks),
                        f.detector,
                        f.score,
                        json.dumps(f.quality),
                        np.asarray(f.vector, np.float32).tobytes(),
                    )
                    for f in faces
                ],
            )

    def remove(self, paths: Iterable[str]) -> int:
        """Remove images (and their faces); returns how many images were removed."""
        with self.db:
            return sum(
                self.db.execute("DELETE FROM images WHERE path = ?", (p,)).rowcount for p in paths
            )

    def errors(self) -> list[tuple[str, str]]:
        """(path, error) of every image that could not be indexed."""
        return list(self.db.execute("SELECT path, error FROM images WHERE error IS NOT NULL"))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, embeddings float32 N×D) of every face, by id."""
        rows = self.db.execute("SELECT id, vector FROM faces ORDER BY id").fetchall()
        dim = int(self.meta()["dim"])
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
        return ids, vecs

    def records(self, ids: Sequence[int]) -> dict[int, dict]:
        """Faces by id: path, face number, box, detector, score, quality and vector."""
        out = {}
        for chunk in range(0, len(ids), 500):
            part = [int(i) for i in ids[chunk : chunk + 500]]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(
                f"SELECT id, path, face, box, detector, score, quality, vector FROM faces "
                f"WHERE id IN ({marks})",
                part,
            ):
                out[row[0]] = {
                    "path": row[1],
                    "face": row[2],
                    "box": json.loads(row[3]),
                    "detector": row[4],
                    "score": row[5],
                    "quality": json.loads(row[6]),
                    "vector": np.frombuffer(row[7], dtype=np.float32),
                }
        return out

    def faiss_index(self):
        """The FAISS index of the faces, rebuilt from SQLite (and saved atomically) when the
        file is missing or does not hold exactly the faces table's ids."""
        import faiss

        path = self.folder / "vectors.faiss"
        ids, vecs = self.vectors()
        index = _read_faiss(path)
        if index is not None and index.ntotal == len(ids):
            if np.array_equal(np.sort(faiss.vector_to_array(index.id_map)), ids):
                return index
        index = build_faiss(ids, vecs)
        tmp = path.with_suffix(".faiss.tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
        return index

    def close(self) -> None:
        """Close the database (and release the write lock, if held)."""
        self.db.close()
        if self.lock:
            self.lock.release()
            self.lock = None


def build_faiss(ids: np.ndarray, vecs: np.ndarray):
    """An inner-product FAISS index of unit vectors with ids: exact up to `EXACT_LIMIT`, HNSW
    above it."""
    import faiss

    dim = vecs.shape[1] if vecs.ndim == 2 and vecs.shape[1] else 1
    if len(ids) <= EXACT_LIMIT:
        inner = faiss.IndexFlatIP(dim)
    else:
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
    return index
