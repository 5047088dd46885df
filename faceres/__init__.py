"""faceres: residual networks for faces, shown honestly.

>>> import faceres
>>> faceres.verify("a.jpg", "b.jpg").verdict
'same'
>>> faceres.analyze_expression("photo.jpg").faces[0].label
'happy'
"""

import os

# On shared CPUs (2-core hosts, Spaces, several jobs at once) OpenMP threads that spin while
# waiting starve the thread holding the work: torch CPU inference ran ~4x slower under load
# (benchmarks/detect_latency.py). Sleeping waits; read when torch loads, an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib  # noqa: E402
import importlib.util  # noqa: E402

_API = {
    "analyze_expression": "faceres.expression",
    "explain_verify": "faceres.identity.explain",
    "verify": "faceres.identity",
}
"""The public functions, imported on first use (PEP 562): `import faceres` stays light, and a
command loads only what it runs (ONNX Runtime or torch; timm only to build torch models)."""

__all__ = ["analyze_expression", "explain_verify", "verify"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """`faceres.verify` and the other functions of `_API`; `faceres.registry` and any other
    sub-package or module, imported on first use."""
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'faceres' has no attribute {name!r}")
