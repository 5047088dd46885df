"""What a similarity means: how often pairs of different people score at least this high, and
pairs of the same person at most this low, on the labelled pairs an identity model was
calibrated on (LFW View 1, stored in its config as `faceres.scores` by `faceres eval lfw`).

>>> rates = score_rates(0.93, config["faceres"]["scores"])
>>> rates["impostor_at_least"], rates["genuine_at_most"]
(0.00375, 0.0275)
>>> rates_text(rates)
'Different people scored at least 0.930 in 6 of 1,600 calibration pairs (0.38%); the same ...'
"""

from __future__ import annotations

import numpy as np


def score_rates(similarity: float, scores: dict) -> dict:
    """Shares of the stored impostor scores ≥ `similarity` and genuine scores ≤ it, with counts.

    >>> score_rates(0.5, {"genuine": [0.4, 0.6, 0.9], "impostor": [0.1, 0.5]})["genuine_at_most"]
    0.3333333333333333
    """
    genuine = np.asarray(scores["genuine"], dtype=np.float64)
    impostor = np.asarray(scores["impostor"], dtype=np.float64)
    high, low = int(np.sum(impostor >= similarity)), int(np.sum(genuine <= similarity))
    return {
        "similarity": round(float(similarity), 6),
        "impostor_at_least": high / max(1, len(impostor)),
        "impostor_count": high,
        "impostors": len(impostor),
        "genuine_at_most": low / max(1, len(genuine)),
        "genuine_count": low,
        "genuines": len(genuine),
        "source": scores.get("source", ""),
    }


def rates_text(rates: dict) -> str:
    """`score_rates` in one sentence a person can read.

    >>> rates_text(score_rates(0.5, {"genuine": [0.4, 0.6], "impostor": [0.1, 0.2]}))
    'Different people scored at least 0.500 in 0 of 2 calibration pairs (0.00%); the same person scored at most 0.500 in 1 of 2 (50.00%).'
    """  # noqa: E501
    s = rates["similarity"]
    return (
        f"Different people scored at least {s:.3f} in {rates['impostor_count']:,} of "
        f"{rates['impostors']:,} calibration pairs ({rates['impostor_at_least']:.2%}); the same "
        f"person scored at most {s:.3f} in {rates['genuine_count']:,} of {rates['genuines']:,} "
        f"({rates['genuine_at_most']:.2%})."
    )
