"""Index build throughput: faces per second through `faceres index build` with the local and
the Ray engines, next to face_recognition (dlib) doing the same work when it imports.

The images are the first `--images` LFW photos in path order (`FACERES_DATA`); each engine builds
a fresh index of them in its own process (`faceres index build ... --engine E --json`, whole
command: model loading and Ray's start included), and the face_recognition script detects every
face of every image (HOG, its default) and computes its 128-d encoding. The three runs alternate,
`--runs` times; the median is reported.

    python benchmarks/index_throughput.py [--images 300] [--runs 3] [--json]
        [--face-recognition-python PYTHON]

face_recognition_models needs `pkg_resources` (setuptools < 81): name an interpreter that has
it with `--face-recognition-python`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import add_out_argument, save

from faceres.search.indexing import image_files
from faceres.settings import data_dir

FACE_RECOGNITION_SCRIPT = """
import json, sys, face_recognition as fr
faces = 0
for path in sys.argv[1:]:
    image = fr.load_image_file(path)
    faces += len(fr.face_encodings(image, fr.face_locations(image)))
print(json.dumps({"faces": faces}))
"""


def timed(argv: list[str]) -> tuple[float, dict]:
    """(wall seconds, the JSON object it printed) of one command."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout[done.stdout.index("{") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--face-recognition-python", default=sys.executable)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_out_argument(parser, "index_throughput")
    args = parser.parse_args()

    root = data_dir(required=True) / "lfw" / "lfw-deepfunneled"
    files = [str(p) for p in image_files([root])[: args.images]]
    work = Path(tempfile.mkdtemp(prefix="faceres-index-"))
    listed = work / "images"
    listed.mkdir()
    for i, path in enumerate(files):  # one folder holding exactly these images
        (listed / f"{i:05d}.jpg").symlink_to(Path(path).resolve())
    faceres = shutil.which("faceres") or "faceres"
    commands = {
        engine: lambda engine=engine: [
            faceres,
            "index",
            "build",
            str(listed),
            "--out",
            str(work / f"{engine}-{time.monotonic_ns()}.index"),
            "--engine",
            engine,
            "--json",
        ]
        for engine in ("local", "ray")
    }
    probe = [args.face_recognition_python, "-c", "import face_recognition"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        commands["face_recognition"] = lambda: [
            args.face_recognition_python,
            "-c",
            FACE_RECOGNITION_SCRIPT,
            *files,
        ]
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    try:
        for _ in range(args.runs):
            for name, argv in commands.items():
                wall, out = timed(argv())
                runs[name].append((wall, int(out["faces"])))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {"images": len(files), "runs": args.runs}
    for name, rows in runs.items():
        wall = statistics.median(w for w, _ in rows)
        faces = rows[0][1]
        result[name] = {
            "faces": faces,
            "median_s": round(wall, 2),
            "faces_per_s": round(faces / wall, 2),
            "images_per_s": round(len(files) / wall, 2),
            "wall_s": [round(w, 2) for w, _ in rows],
        }
    save(result, args.out)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name in runs:
        r = result[name]
        print(
            f"{name:17s} {r['faces']:5d} faces in {r['median_s']:6.1f} s: "
            f"{r['faces_per_s']:6.1f} faces/s ({r['images_per_s']:.1f} images/s)"
        )


if __name__ == "__main__":
    main()
