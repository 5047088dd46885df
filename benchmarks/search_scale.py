"""Search at scale: the face index's FAISS search on N synthetic unit vectors.

Builds the index `faceres.search.store.build_faiss` builds for N faces (exact up to
`EXACT_LIMIT`, HNSW above it) from random unit vectors of the identity model's size (128), then
times single-probe searches (top 10) for probes near stored vectors, and measures recall@10
against exact search.

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

from faceres.search.store import EXACT_LIMIT, build_faiss

DIM = 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--queries", type=int, default=200, help="probes timed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    add_out_argument(parser, "search_scale")
    args = parser.parse_args()

    import faiss

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((args.n, DIM), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(args.n, dtype=np.int64)
    start = time.perf_counter()
    index = build_faiss(ids, vecs)
    build_s = time.perf_counter() - start

    picks = rng.choice(args.n, args.queries, replace=False)
    probes = vecs[picks] + 0.3 * rng.standard_normal(
        (args.queries, DIM), dtype=np.float32
    ) / np.sqrt(DIM)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    times, found = [], []
    for probe in probes:
        t = time.perf_counter()
        _, hit = index.search(probe[None], 10)
        times.append(1000 * (time.perf_counter() - t))
        found.append(hit[0])
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vecs)
    _, truth = exact.search(probes, 10)
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
    result = {
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
