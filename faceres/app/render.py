"""Pictures and HTML sent to the browser: inline JPEG data URIs (never written to disk), boxes drawn
on photos, the verdict with the calibration plot and the face-numbered photo of the Verify tab.

>>> data_uri(np.zeros((8, 8, 3), np.uint8))[:23]
'data:image/jpeg;base64,'
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import cv2
import numpy as np

from faceres.errors import ImageError
from faceres.identity.calibration import rates_text

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


def figures_html(images: list[np.ndarray], captions: list[str], width: int = 180) -> str:
    """RGB arrays side by side, each `width` px wide with its caption (inline JPEGs).

    >>> figures_html([np.zeros((8, 8, 3), np.uint8)], ["face 1"]).count("<figure")
    1
    """
    return "".join(
        f'<figure style="display:inline-block;margin:4px;width:{width}px;vertical-align:top">'
        f"{img_tag(data_uri(image), caption)}"
        f'<figcaption style="overflow-wrap:anywhere;font-size:.85em">{html.escape(caption)}'
        "</figcaption></figure>"
        for image, caption in zip(images, captions, strict=True)
    )


T = TypeVar("T")
_PLOT_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceres-plot")
"""The one thread that draws figures while serving: matplotlib keeps its fonts per thread (an
open file each), so figures drawn on Gradio's worker threads, which come and go, would pile
fonts up for as long as the server runs."""


def on_plot_thread(draw: Callable[..., T], *args: Any) -> T:
    """`draw(*args)`, run on the plot thread (the caller waits)."""
    return _PLOT_THREAD.submit(draw, *args).result()


def plots_html(figures: dict, alt: str) -> str:
    """Matplotlib figures (name → figure) as inline PNG `<img>`s, two to a row, and closed: the
    page gets the pictures, nothing is written to disk (Gradio serves no file of ours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = []
    for name, figure in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        title = f"{alt}: {name.removesuffix('.png').replace('_', ' ')}"
        cells.append(f'<div style="flex:1 1 45%;min-width:280px">{img_tag(uri, title)}</div>')
    return f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cells)}</div>'


def image_html(image: np.ndarray, alt: str, max_side: int = PREVIEW_MAX_SIDE) -> str:
    """An RGB array as an inline `<img>` (JPEG data URI): shown to the user, never written."""
    return img_tag(data_uri(image, max_side), alt)


Rect = tuple[int, int, int, int]
"""x, y, width, height in pixels."""
LABEL_SHIFTS = 12
"""How many label heights `place_labels` moves a label up or down to find it a free place."""


def overlap(a: Rect, b: Rect) -> bool:
    """Whether two rectangles share any pixel.

    >>> overlap((0, 0, 10, 10), (9, 9, 5, 5)), overlap((0, 0, 10, 10), (10, 0, 5, 5))
    (True, False)
    """
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def place_labels(
    boxes: list[Rect], sizes: list[tuple[int, int]], width: int, height: int
) -> list[Rect]:
    """Where each face's label goes in a `width`×`height` image: above its box, else below, else
    inside its top, at the box's left (or right) edge, else one of those shifted by up to
    `LABEL_SHIFTS` label heights, else the nearest free place on a grid over the whole image: the
    first place that covers no label placed before it (faces in order). Every rectangle lies
    inside the image; two overlap only when no place is free (then the least covered one).

    >>> place_labels([(0, 0, 40, 40), (30, 0, 40, 40)], [(50, 10), (50, 10)], 100, 100)
    [(0, 40, 50, 10), (30, 0, 50, 10)]
    """
    placed: list[Rect] = []
    for (x, y, w, h), (lw, lh) in zip(boxes, sizes, strict=True):
        lw, lh = min(lw, width), min(lh, height)
        lefts = dict.fromkeys(min(max(0, v), width - lw) for v in (x, x + w - lw))
        anchors = (y - lh, y + h, y)  # above, below, inside
        shifted = (
            a + sign * k * lh
            for k in range(1, LABEL_SHIFTS + 1)
            for a in anchors
            for sign in (1, -1)
        )
        near = [
            (left, top, lw, lh)
            for top in (*anchors, *shifted)
            if 0 <= top <= height - lh
            for left in lefts
        ]
        free = next((c for c in near if not any(overlap(c, p) for p in placed)), None)
        if free is None:  # crowded: the nearest free place anywhere
            grid = sorted(
                (
                    (left, top, lw, lh)
                    for top in range(0, height - lh + 1, max(1, lh // 2))
                    for left in range(0, width - lw + 1, max(1, lw // 4))
                ),
                key=lambda c: (c[0] - x) ** 2 + (c[1] - y) ** 2,
            )
            free = next((c for c in grid if not any(overlap(c, p) for p in placed)), None)
        fallback = near or [(next(iter(lefts)), min(max(0, y), height - lh), lw, lh)]
        placed.append(free or min(fallback, key=lambda c: sum(_shared(c, p) for p in placed)))
    return placed


def _shared(a: Rect, b: Rect) -> int:
    """Pixels two rectangles share."""
    dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, dx) * max(0, dy)


def draw_faces(image: np.ndarray, faces: list, labels: list[str]) -> np.ndarray:
    """A copy of `image` with every face boxed and labelled, each label whole inside the image
    and clear of the others (`place_labels`, a line to its box when placed away from it); text
    too wide for the image is drawn smaller."""
    out = image.copy()
    height, width = image.shape[:2]
    thick = max(2, round(max(height, width) / 300))
    font, pad = cv2.FONT_HERSHEY_SIMPLEX, 3
    boxes, sizes, texts = [], [], []
    for face, label in zip(faces, labels, strict=True):
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), CHOSEN, thick)
        scale = max(0.5, max(height, width) / 900)
        (tw, th), base = cv2.getTextSize(label, font, scale, max(1, thick // 2))
        if tw + 2 * pad > width:  # narrower text rather than a clipped label
            scale *= (width - 2 * pad) / (tw + 2 * pad)
            (tw, th), base = cv2.getTextSize(label, font, scale, max(1, thick // 2))
        boxes.append((x, y, w, h))
        sizes.append((tw + 2 * pad, th + base + 2 * pad))
        texts.append((label, scale, th))
    rects = place_labels(boxes, sizes, width, height)
    for (lx, ly, lw, lh), (x, y, w, h) in zip(rects, boxes, strict=True):
        # A label placed away from its box (a crowd) gets a line to it, under every label.
        ax = min(max(x + w // 2, lx), lx + lw - 1)
        ay = min(max(y + h // 2, ly), ly + lh - 1)
        bx, by = min(max(ax, x), x + w), min(max(ay, y), y + h)
        if abs(ax - bx) + abs(ay - by) > 2 * thick:
            cv2.line(out, (ax, ay), (bx, by), CHOSEN, max(1, thick // 2), cv2.LINE_AA)
    for (lx, ly, lw, lh), (label, scale, th) in zip(rects, texts, strict=True):
        cv2.rectangle(out, (lx, ly), (lx + lw - 1, ly + lh - 1), CHOSEN, -1)
        cv2.putText(
            out,
            label,
            (lx + pad, ly + pad + th),
            font,
            scale,
            (0, 0, 0),
            max(1, thick // 2),
            cv2.LINE_AA,
        )
    return out


def video_html(webm: bytes, alt: str) -> str:
    """A WebM video as an inline `<video>` (data URI): sent to the browser, never stored."""
    src = "data:video/webm;base64," + base64.b64encode(webm).decode("ascii")
    return (
        f'<video src="{src}" title="{html.escape(alt)}" controls loop muted playsinline '
        'style="display:block;max-width:100%;border-radius:6px"></video>'
    )


def timeline_figure(tracks: list[tuple[str, list[float], dict[str, list[float]]]]):
    """The timeline's matplotlib figure: one plot per track (title, times in seconds,
    probability per class and frame), the classes' legend below every plot, clear of the
    titles and the axis label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(tracks), 1, figsize=(6.4, 1.9 * len(tracks) + 0.6), dpi=100, squeeze=False
    )
    for ax, (title, times, series) in zip(axes[:, 0], tracks, strict=True):
        for n, (name, values) in enumerate(series.items()):
            ax.plot(
                times,
                values,
                lw=1.4,
                color=f"C{n}",
                label=name,
                marker="." if len(times) < 3 else None,
            )
        ax.set(title=title, ylim=(0, 1), ylabel="probability")
        ax.title.set_fontsize(9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1, 0].set_xlabel("time in the video (s)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    legend_height = 0.3 / fig.get_figheight()  # inches of legend, as a share of the figure
    fig.tight_layout(rect=(0, legend_height, 1, 1))
    fig.legend(handles, names, fontsize=7, ncol=8, loc="lower center", frameon=False)
    return fig


def timeline_html(tracks: list[tuple[str, list[float], dict[str, list[float]]]]) -> str:
    """`timeline_figure` as an inline PNG `<img>` ("" without a track), drawn on the plot
    thread."""
    return on_plot_thread(_timeline_html, tracks) if tracks else ""


def _timeline_html(tracks: list[tuple[str, list[float], dict[str, list[float]]]]) -> str:
    import matplotlib.pyplot as plt

    fig = timeline_figure(tracks)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return img_tag(uri, "probability of every class over time, per tracked face")


def score_plot(scores: dict, similarity: float, threshold: float, band: float) -> str:
    """The calibration pairs' similarities (same person, different people) as histograms, with
    the threshold and the uncertain band marked, and this pair's similarity as a line drawn by the
    browser over the picture (HTML): the picture is rendered once per calibration
    (`_distributions`), a pair adds only the line (at the left edge when it is lower than every
    calibration pair).

    >>> 'title="this pair: 0.900"' in score_plot({"genuine": [0.95], "impostor": [0.6]}, 0.9, 0.91, 0.01)
    True
    """  # noqa: E501
    uri, left, right, low = on_plot_thread(
        _distributions, tuple(scores["genuine"]), tuple(scores["impostor"]), threshold, band
    )
    x = min(1.0, max(low, similarity))
    at = 100 * (left + (right - left) * (x - low) / (1.0 - low))
    return (
        '<div style="position:relative;display:inline-block;max-width:100%">'
        + img_tag(uri, "similarity of the calibration pairs, threshold and uncertain band")
        + f'<div title="this pair: {similarity:.3f}" style="position:absolute;top:6%;bottom:22%;'
        f'left:{at:.2f}%;width:3px;margin-left:-1px;background:#1f4e79"></div></div>'
    )


@functools.lru_cache(maxsize=8)
def _distributions(
    genuine: tuple[float, ...], impostor: tuple[float, ...], threshold: float, band: float
) -> tuple[str, float, float, float]:
    """(PNG data URI, left and right edges of the plot area as fractions of the picture's width,
    lowest similarity on the axis; the highest is 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low = float(np.floor(20 * np.min(impostor, initial=1.0)) / 20 - 0.05)
    bins = np.linspace(low, 1.0, 61)
    fig, ax = plt.subplots(figsize=(6.4, 2.4), dpi=100)
    ax.axvspan(threshold - band, threshold + band, color="#f9e79f", label="uncertain band")
    ax.hist(impostor, bins, color="#e74c3c", alpha=0.6, label="different people")
    ax.hist(genuine, bins, color="#2ecc71", alpha=0.6, label="same person")
    ax.axvline(threshold, color="#333", lw=1, ls="--", label="threshold")
    ax.plot([], [], color="#1f4e79", lw=3, label="this pair")
    ax.set(xlabel="cosine similarity", ylabel="calibration pairs", xlim=(low, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.tight_layout()
    box = ax.get_position()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return uri, float(box.x0), float(box.x1), low


def verdict_html(details: dict, plot: str | None) -> str:
    """The verdict in words, why when uncertain, what the score means, and `plot`
    (`score_plot`'s HTML) in place of a bare 0-1 gauge."""
    verdict, reasons = details["verdict"], details.get("reasons", [])
    color = {"same": "#2ecc71", "different": "#e74c3c"}.get(verdict, "#d4ac0d")
    text = {"same": "Same person", "different": "Different people"}.get(verdict, "Uncertain")
    threshold, band = details["threshold"], details["band"]
    if verdict == "uncertain":
        why = reasons or [
            f"similarity within {band:.3f} of the threshold {threshold:.3f}: too close to call"
        ]
        text += ": " + "; ".join(why)
    rates = details.get("rates") or {}
    meaning = f"<div>{html.escape(rates_text(rates))}</div>" if rates else ""
    meaning += members_html(details)
    return f"""
<div style="font-family:sans-serif">
  <div style="font-size:1.4em;font-weight:600;color:{color}">{html.escape(text)}</div>
  <div>similarity <b>{details["similarity"]:.3f}</b> (cosine, not a percentage) · threshold
       {threshold:.3f} · uncertain from {threshold - band:.3f} to {threshold + band:.3f} · model
       <code>{html.escape(details["model"])}</code> · detector
       <code>{html.escape(str(details.get("detector")))}</code></div>
  {meaning}
  <div style="max-width:640px">{plot or ""}</div>
</div>"""


def members_html(details: dict) -> str:
    """A fused model's networks, each with its own similarity, threshold and verdict, and
    whether they disagree ("" for a single model)."""
    members = details.get("members") or []
    if not members:
        return ""
    rows = "".join(
        f"<tr><td><code>{html.escape(m['model'])}</code></td><td>{m['similarity']:.3f}</td>"
        f"<td>{m['threshold']:.3f} ± {m['band']:.3f}</td><td>{html.escape(m['verdict'])}</td></tr>"
        for m in members
    )
    said = details.get("disagreement") or "The networks agree."
    return (
        f"<div><b>{html.escape(said)}</b></div><table style='font-size:.9em'><tr><th>network</th>"
        f"<th>similarity</th><th>its threshold ± band</th><th>its verdict</th></tr>{rows}</table>"
    )


def photo_html(photo: dict, chosen: int, alt: str) -> str:
    """A photo of `pickable_faces` with every face boxed and numbered from 1, face number `chosen`
    in green (boxes drawn by the browser over the preview, so a new pick needs no pixels)."""
    width, height = photo["size"]
    marks = []
    for i, face in enumerate(photo["faces"]):
        x, y, w, h = face["box"]
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        color = f"rgb{CHOSEN if i + 1 == chosen else OTHER}"
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
