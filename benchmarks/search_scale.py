"""Search at scale: the face index's FAISS search on N synthetic unit vectors.

Builds the index `faceres.search.store.build_faiss` builds for N faces (exact up to
`EXACT_LIMIT`, HNSW above it) from synthetic embeddings of the identity model's size (128) shaped
like a photo collection: N / 10 people, ten faces each, scattered around the person's direction
so that two faces of one person have a cosine of about 0.93 (LFW's same-person pairs: 0.95 on
average) and faces of different people about 0. It then times single-probe searches (top 10)
for new faces of stored people and measures recall@10 against exact search. (Uniformly random
vectors, with no people in them, are the worst case for any graph index: their "neighbours" are
noise; a first run on them gave recall@10 0.25.)

    python benchmarks/search_scale.py --n 1000000 [--queries 200] [--json]

Keys: `build_s`, `p50_ms`, `p95_ms`, `recall_at_10` (approximate vs exact; 1.0 for an exact
index), `rss_mb` (peak resident memory of the process), `index` (its kind). The result is written
to benchmarks/results/search_scale.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from record import add_out_argument, save

from faceres.search.store import EXACT_LIMIT, HNSW_EF_SEARCH, build_faiss

DIM = 128


SPREAD = 0.27
"""Per-dimension scatter of a face around its person's direction, times 1/sqrt(DIM): two faces of
one person then have a cosine of about 1 / (1 + SPREAD^2) = 0.93."""


def faces_of(directions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors scattered around `directions` (one per row) by `SPREAD`."""
    noise = rng.standard_normal(directions.shape, dtype=np.float32) * (SPREAD / np.sqrt(DIM))
    out = directions + noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


EF_SWEEP = (64, 128, 256, 512)
"""HNSW search depths measured besides the store's own (`HNSW_EF_SEARCH`)."""


def timed_search(index, probes: np.ndarray, truth: np.ndarray) -> tuple[list[float], float]:
    """Per-probe search times (ms, top 10, one probe at a time) and recall@10 against `truth`."""
    times, found = [], []
    for probe in probes:
        t = time.perf_counter()
        _, hit = index.search(probe[None], 10)
        times.append(1000 * (time.perf_counter() - t))
        found.append(hit[0])
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
    return times, recall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--queries", type=int, default=200, help="probes timed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    add_out_argument(parser, "search_scale")
    args = parser.parse_args()

    import faiss

    rng = np.random.default_rng(0)
    people = rng.standard_normal((max(1, args.n // 10), DIM), dtype=np.float32)
    people /= np.linalg.norm(people, axis=1, keepdims=True)
    owner = np.arange(args.n) % len(people)
    vecs = faces_of(people[owner], rng)
    ids = np.arange(args.n, dtype=np.int64)
    start = time.perf_counter()
    index = build_faiss(ids, vecs)
    build_s = time.perf_counter() - start

    probes = faces_of(people[rng.choice(len(people), args.queries)], rng)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vecs)
    _, truth = exact.search(probes, 10)
    graph = faiss.downcast_index(index.index)
    sweep = {}
    for ef in EF_SWEEP if hasattr(graph, "hnsw") else (None,):
        if ef is not None:
            graph.hnsw.efSearch = ef
        sweep[ef] = timed_search(index, probes, truth)
    if hasattr(graph, "hnsw"):
        graph.hnsw.efSearch = HNSW_EF_SEARCH
    times, recall = timed_search(index, probes, truth)
    result = {
        "ef_sweep": {
            str(ef): {
                "p50_ms": round(float(np.percentile(t, 50)), 3),
                "recall_at_10": round(r, 4),
            }
            for ef, (t, r) in sweep.items()
        },
        "ef_search": HNSW_EF_SEARCH if args.n > EXACT_LIMIT else None,
        "n": args.n,
        "dim": DIM,
        "index": "exact (IndexFlatIP)" if args.n <= EXACT_LIMIT else "HNSW (IndexHNSWFlat)",
        "build_s": round(build_s, 2),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "recall_at_10": round(recall, 4),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "faiss_threads": faiss.omp_get_max_threads(),
    }
    save(result, args.out)
    print(json.dumps(result, indent=2) if args.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
