"""faceres: residual networks for faces, shown honestly.

>>> import faceres
>>> faceres.identity("a.jpg", "b.jpg").verdict
'same'
>>> faceres.analyze_expression("photo.jpg").faces[0].label
'happy'
"""

import os

# On shared CPUs (2-core hosts, Spaces, several jobs at once) OpenMP threads that spin while
# waiting starve the thread holding the work: torch CPU inference ran ~4x slower under load
# (benchmarks/detect_latency.py). Sleeping waits; read when torch loads, an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from faceres import models  # noqa: E402, F401  (registers every faceres architecture with timm)
from faceres.explain import explain_verify
from faceres.expression import analyze_expression
from faceres.identity import verify

__all__ = ["analyze_expression", "explain_verify", "verify"]
__version__ = "0.1.0"
