"""Cold start: whole-process wall time and peak memory of one-shot commands, and the app's time
to its first answer.

Each command runs as a fresh process, `--runs` times (median reported), the commands alternating
run by run so that a busy moment hits them all alike:

- `faceres verify A B` and `faceres expression A B` on two photos (two LFW photos when
  `FACERES_DATA` holds LFW, else scikit-image's astronaut and a changed copy);
- the same verification with face_recognition (dlib), a three-line script, when it imports
  (`--face-recognition-python` names an interpreter that has it: face_recognition_models needs
  `pkg_resources`, which setuptools ≥ 81 no longer ships);
- `python app.py`: seconds from launch to the port answering and to the first `/verify` answer
  through `gradio_client` (`--app-runs` times), each launch with an empty faceres cache.

Peak memory is the child's maximum resident set (`wait4`). The commands run with the cache they
find (`FACERES_CACHE`): one warm-up run of each goes first, not counted, so the expression model
is exported to ONNX before the timing, as on a user's second run (the identity model's ONNX file
is committed in the registry: nothing is exported for it, first run or not).

With `--fresh`, every process runs as on a fresh install: an empty `FACERES_DATA` folder (no
research data), an empty faceres cache of its own, the Hub offline; nothing is warmed up.

    python benchmarks/cold_start.py [--runs 5] [--app-runs 3] [--fresh] [--model NAME] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import add_out_argument, save

ROOT = Path(__file__).resolve().parent.parent
FACE_RECOGNITION_SCRIPT = """
import sys, face_recognition as fr
a, b = (fr.face_encodings(fr.load_image_file(p))[0] for p in sys.argv[1:3])
print("same" if fr.compare_faces([a], b)[0] else "different", fr.face_distance([a], b)[0])
"""


def photos(folder: Path) -> tuple[Path, Path, str]:
    """Two photos of one person as files, and where they come from."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from verify_latency import photos as photo_bytes

    a, b, source = photo_bytes()
    paths = (folder / "a.jpg", folder / "b.jpg")
    for path, data in zip(paths, (a, b), strict=True):
        path.write_bytes(data)
    return paths[0], paths[1], source


def fresh_env(folder: Path) -> dict[str, str]:
    """This environment as a fresh install sees it: no research data, a new empty faceres
    cache, the Hub offline (a new folder below `folder` for each call)."""
    run = Path(tempfile.mkdtemp(dir=folder, prefix="fresh-"))
    (run / "no-data").mkdir()
    return {
        **os.environ,
        "FACERES_DATA": str(run / "no-data"),
        "FACERES_CACHE": str(run / "cache"),
        "HF_HUB_OFFLINE": "1",
    }


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak resident MiB, stdout) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


def app_first_answer(a: Path, b: Path, port: int, cache: Path) -> dict:
    """Seconds from `python app.py` to its port answering and to its first /verify answer, with
    an empty faceres cache (a machine or Space that starts afresh: the expression model is
    exported meanwhile)."""
    from gradio_client import Client, handle_file

    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "FACERES_CACHE": str(cache)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - start > 120:
                    raise SystemExit("the app did not start") from None
                time.sleep(0.05)
        port_s = time.perf_counter() - start
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        out = client.predict(
            handle_file(str(a)), handle_file(str(b)), None, None, None, api_name="/verify"
        )
        return {
            "port_s": round(port_s, 3),
            "first_verify_s": round(time.perf_counter() - start, 3),
            "verdict": out[6]["verdict"],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary(runs: list[tuple[float, float, str]]) -> dict:
    walls, peaks = [r[0] for r in runs], [r[1] for r in runs]
    return {
        "median_wall_s": round(statistics.median(walls), 3),
        "median_peak_mib": round(statistics.median(peaks), 1),
        "wall_s": [round(w, 3) for w in walls],
        "peak_mib": [round(p, 1) for p in peaks],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--app-runs", type=int, default=3, help="0: skip the app")
    parser.add_argument("--port", type=int, default=7915)
    parser.add_argument(
        "--face-recognition-python",
        default=sys.executable,
        help="interpreter that imports face_recognition (default: this one)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="each process as on a fresh install: no research data, an empty cache, Hub offline",
    )
    parser.add_argument(
        "--model", help="identity model of `faceres verify` (default: the registry's default)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_out_argument(parser, "cold_start_fresh" if "--fresh" in sys.argv else "cold_start")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="faceres-cold-"))
    try:
        a, b, source = photos(folder)
        faceres = shutil.which("faceres") or "faceres"
        commands = {
            "faceres_verify": [faceres, "verify", str(a), str(b)]
            + (["--model", args.model] if args.model else []),
            "faceres_expression": [faceres, "expression", str(a), str(b)],
        }
        probe = [args.face_recognition_python, "-c", "import face_recognition"]
        if subprocess.run(probe, capture_output=True).returncode == 0:
            fr = [args.face_recognition_python, "-c", FACE_RECOGNITION_SCRIPT, str(a), str(b)]
            commands["face_recognition_verify"] = fr
        runs: dict[str, list] = {name: [] for name in commands}
        env = (lambda: fresh_env(folder)) if args.fresh else (lambda: None)
        outputs = {
            name: run_once(argv, env())[2].strip().splitlines()[0]
            for name, argv in commands.items()
        }
        for _ in range(args.runs):
            for name, argv in commands.items():
                runs[name].append(run_once(argv, env()))
        app = [
            app_first_answer(a, b, args.port, folder / "app-cache") for _ in range(args.app_runs)
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    result = {
        "photos": source,
        "fresh": args.fresh,
        "runs": args.runs,
        **{name: {**summary(r), "first_line": outputs[name]} for name, r in runs.items()},
    }
    if app:
        result["app"] = {
            "median_port_s": round(statistics.median(r["port_s"] for r in app), 3),
            "median_first_verify_s": round(statistics.median(r["first_verify_s"] for r in app), 3),
            "runs": app,
        }
    save(result, args.out)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name in runs:
        r = result[name]
        print(f"{name:26s} {r['median_wall_s']:6.2f} s  {r['median_peak_mib']:7.1f} MiB")
    if app:
        print(
            f"app: port after {result['app']['median_port_s']:.2f} s, first verify answer "
            f"after {result['app']['median_first_verify_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
