"""Pictures and HTML sent to the browser: inline JPEG data URIs (never written to disk), boxes drawn
on photos, the verdict gauge and the face-numbered photo of the Verify tab.

>>> data_uri(np.zeros((8, 8, 3), np.uint8))[:23]
'data:image/jpeg;base64,'
"""

from __future__ import annotations

import base64
import html
import re

import cv2
import numpy as np

from faceres.errors import ImageError

PREVIEW_MAX_SIDE = 1024
CHOSEN, OTHER = (46, 204, 113), (241, 196, 15)
JPEG_URI = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}")
"""The only pictures a client may send back in the faces JSON: the JPEG data URIs we made."""


def data_uri(image: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> str:
    """An RGB array as a JPEG data URI (at most `max_side` pixels a side): sent, never written.

    >>> data_uri(np.zeros((8, 8, 3), np.uint8))[:23]
    'data:image/jpeg;base64,'
    """
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88]
    )
    if not ok:
        raise ImageError("Could not encode the result image.")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


def img_tag(src: str, alt: str) -> str:
    """An `<img>` of a data URI, scaled to its container."""
    return (
        f'<img src="{src}" alt="{html.escape(alt)}" '
        'style="display:block;max-width:100%;height:auto;border-radius:6px">'
    )


def image_html(image: np.ndarray, alt: str, max_side: int = PREVIEW_MAX_SIDE) -> str:
    """An RGB array as an inline `<img>` (JPEG data URI): shown to the user, never written."""
    return img_tag(data_uri(image, max_side), alt)


def draw_faces(image: np.ndarray, faces: list, labels: list[str]) -> np.ndarray:
    """A copy of `image` with every face boxed and labelled."""
    out = image.copy()
    thick = max(2, round(max(image.shape[:2]) / 300))
    scale = max(0.5, max(image.shape[:2]) / 900)
    for face, label in zip(faces, labels, strict=True):
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), CHOSEN, thick)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + base + 4), CHOSEN, -1)
        cv2.putText(
            out,
            label,
            (x + 3, top + th + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            max(1, thick // 2),
            cv2.LINE_AA,
        )
    return out


def gauge_html(
    similarity: float, threshold: float, band: tuple[float, float], verdict: str, model: str
) -> str:
    """Similarity on a 0-1 bar with the calibrated threshold and its uncertainty band marked."""

    def pct(v: float) -> float:
        return 100 * min(1.0, max(0.0, v))

    lo, hi = band
    color = {"same": "#2ecc71", "different": "#e74c3c"}.get(verdict, "#f1c40f")
    text = {"same": "Same person", "different": "Different people"}.get(
        verdict, "Uncertain: too close to the threshold to call"
    )
    return f"""
<div style="font-family:sans-serif">
  <div style="font-size:1.4em;font-weight:600;color:{color}">{text}</div>
  <div style="position:relative;height:22px;background:#eee;border-radius:4px;margin:10px 0">
    <div style="position:absolute;left:{pct(lo)}%;width:{pct(hi) - pct(lo)}%;height:100%;
         background:#f9e79f" title="uncertain band"></div>
    <div style="position:absolute;left:0;width:{pct(similarity)}%;height:8px;top:7px;
         background:{color};border-radius:4px"></div>
    <div style="position:absolute;left:{pct(threshold)}%;width:2px;height:100%;
         background:#333" title="threshold"></div>
  </div>
  <div>similarity <b>{similarity:.3f}</b> · threshold {threshold:.3f} (calibrated) ·
       uncertain band {lo:.3f} – {hi:.3f} · model <code>{html.escape(model)}</code></div>
</div>"""


def photo_html(photo: dict, chosen: int, alt: str) -> str:
    """A photo of `pickable_faces` with every face boxed and numbered, the `chosen` one in green
    (boxes drawn by the browser over the preview, so a new pick needs no pixels)."""
    width, height = photo["size"]
    marks = []
    for i, face in enumerate(photo["faces"]):
        x, y, w, h = face["box"]
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        color = f"rgb{CHOSEN if i == chosen else OTHER}"
        marks.append(
            f'<div style="position:absolute;box-sizing:border-box;left:{100 * x0 / width:.2f}%;'
            f"top:{100 * y0 / height:.2f}%;width:{100 * (x1 - x0) / width:.2f}%;"
            f'height:{100 * (y1 - y0) / height:.2f}%;border:3px solid {color}">'
            f'<span style="position:absolute;left:0;top:0;padding:0 5px;background:{color};'
            f'color:#000;font:600 13px sans-serif">{i + 1}</span></div>'
        )
    return (
        '<div style="position:relative;display:inline-block;max-width:100%">'
        + img_tag(photo["preview"], alt)
        + "".join(marks)
        + "</div>"
    )
