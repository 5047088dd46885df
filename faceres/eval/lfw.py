"""Identity evaluation on pair lists: LFW (View 1 calibration, View 2 10-fold) and any CSV.

Every image goes through the same detect → align → embed pipeline as `faceres.identity`, embedded
once per run. Two documented rules decide which face is used:

- several faces: LFW images are centred on the labelled person, so LFW uses the face whose box
  centre is nearest the image centre (`pick="center"`); other pair lists use the largest face,
  as `verify` does.
- no face: the image is not dropped; it is counted in `undetected` and embedded from a centre
  crop, the template mapped onto the centred square of side `CENTRE_CROP` × the shorter side
  (about where LFW's 250×250 images hold the face).

Similarity is the cosine of L2-normalised embeddings (higher = more similar).

>>> report = evaluate_lfw("dlib-resnet29-face", detector="yunet")
>>> round(report["view2"]["accuracy_mean"], 4), report["undetected"]
(0.992, 0)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from faceres import registry
from faceres.datasets.lfw import (
    TUNE_DIFFERENT_PAIRS,
    Pair,
    image_pairs,
    lfw_dir,
    read_lfw_pairs,
    read_pairs_csv,
)
from faceres.detect import BACKENDS, SCHEMES, Face, backend, detect_faces, select_detector
from faceres.detect.landmarks import dlib5_in_box
from faceres.errors import DataError
from faceres.eval.metrics import (
    BAND_TARGET,
    FAR_TARGET,
    accuracy,
    best_balanced_accuracy,
    best_threshold,
    called_metrics,
    choose_band,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    smallest_limit,
    tar_at_far,
    verdicts,
)
from faceres.eval.plots import save_risk_coverage_plot, save_roc_plot
from faceres.face.align import align, dlib_chip_template
from faceres.face.pipeline import FacePipeline, Member, split
from faceres.face.quality import FaceQuality, assess, gate_reasons
from faceres.imageio import load_image

log = logging.getLogger(__name__)

Embedder = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Aligned RGB uint8 crops → L2-normalised embeddings (N, D)."""

CENTRE_CROP = 0.6
"""Side of the fallback centre crop, as a fraction of the image's shorter side."""
UNDETECTED_RULE = f"centre crop, side {CENTRE_CROP} x shorter side"
"""How reports describe the embedding of an image without a detected face."""
TUNE_SCALES = (1.0, 1.05, 1.1, 1.15, 1.2)
"""yunet5 template scales `--tune` tries, each with and without the dlib5 view."""
BAND_RULE = (
    f"narrowest band around the threshold outside which {BAND_TARGET:.1%} of View 1's pairs "
    "(DevTrain + DevTest) are verified correctly"
)
"""The uncertain band's operating point, in words (reports and the model's config)."""
GATE_SCALES = (0.4, 0.25)
"""Sizes View 1's images are shrunk to when `--fit-gate` fits the quality gate."""
GATE_RULE = (
    "min_eye_distance: the smallest whole number of pixels L such that, with View 1's images "
    f"shrunk to {' and '.join(map(str, GATE_SCALES))} of their size, the verdicts on pairs whose "
    f"smaller face has at least L px between the eyes are {BAND_TARGET:.1%} right (the band's "
    "operating point)"
)
BOX_FIT_IMAGES = 400
"""View 1 images the dlib detector runs on to fit where its box lies relative to YuNet's."""


# --- faces and embeddings ---------------------------------------------------------------------


def choose_face(faces: list[Face], shape: tuple[int, ...], pick: str) -> Face | None:
    """The face to evaluate: the largest (`pick="largest"`) or the one nearest the centre."""
    if not faces:
        return None
    if pick == "largest":
        return faces[0]
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(
        faces,
        key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2,
    )


def centre_face(shape: tuple[int, ...], template: dict) -> Face:
    """The fallback for an image without a detected face: landmarks that make `align` return
    the centred square of side `CENTRE_CROP` × the shorter side."""
    scheme = next(k for k in SCHEMES if k in template)
    width, height = template["size"]
    side = CENTRE_CROP * min(shape[:2])
    points = np.asarray(template[scheme], dtype=np.float64)
    scale = side / max(width, height)
    centre = np.array([shape[1] / 2, shape[0] / 2])
    landmarks = (points - np.array([width, height]) / 2) * scale + centre
    return Face(
        (float(centre[0] - side / 2), float(centre[1] - side / 2), side, side),
        landmarks.astype(np.float32),
        scheme,
        0.0,
        "centre-crop",
    )


def read_image(path: Path, scale: float = 1.0) -> np.ndarray:
    """An image decoded as RGB and, when `scale` < 1, shrunk to `scale` times its size (area
    interpolation: `--downscale`)."""
    image = load_image(path)
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def detect_images(
    paths: Iterable[Path], detector: str | None, pick: str, scale: float = 1.0
) -> dict[Path, Face | None]:
    """The chosen face of every image (None where no face was detected), images shrunk to
    `scale`."""
    faces: dict[Path, Face | None] = {}
    for path in paths:
        image = read_image(path, scale)
        faces[path] = choose_face(detect_faces(image, detector), image.shape, pick)
        if len(faces) % 1000 == 0:
            log.info("detected %d images", len(faces))
    return faces


def embed_images(
    faces: dict[Path, Face | None],
    members: Sequence[Member],
    batch_size: int = 32,
    scale: float = 1.0,
) -> dict[Path, np.ndarray]:
    """Embedding of every image (shrunk to `scale`) by the face pipeline of `members`: its face
    aligned onto each member's template (and its test-time views), else the centre crop."""
    pipeline = FacePipeline(tuple(members))
    template = pipeline.template
    paths = list(faces)
    out: dict[Path, np.ndarray] = {}
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images = [read_image(path, scale) for path in chunk]
        found = [[faces[p] or centre_face(im.shape, template)] for p, im in zip(chunk, images)]
        records = pipeline.records(images, found)
        out.update((path, r[0].embedding) for path, r in zip(chunk, records, strict=True))
        if (start // batch_size) % 30 == 0:
            log.info("embedded %d / %d images", start + len(chunk), len(paths))
    return out


def assess_images(
    faces: dict[Path, Face | None], template: dict, scale: float = 1.0
) -> dict[Path, FaceQuality | None]:
    """The quality record (`faceres.face.quality.assess`) of every detected face."""
    return {
        path: assess(face, align(read_image(path, scale), face, template)) if face else None
        for path, face in faces.items()
    }


def gated_pairs(
    pairs: Sequence[Pair], quality: dict[Path, FaceQuality | None], gate: dict
) -> np.ndarray:
    """Per pair, True where a face was not found or fails the quality `gate`."""
    return np.array(
        [
            any(not q or gate_reasons(q, gate) for q in (quality[pair.left], quality[pair.right]))
            for pair in pairs
        ],
        dtype=bool,
    )


def fit_quality_gate(
    pairs: Sequence[Pair],
    detector: str | None,
    members: Sequence[Member],
    threshold: float,
    band: float,
) -> dict:
    """The quality gate's eye-distance limit, fitted on `pairs` (View 1) shrunk to each of
    `GATE_SCALES` (`GATE_RULE`), with the verdicts of `threshold` and `band`."""
    paths = list(dict.fromkeys(p for pair in pairs for p in (pair.left, pair.right)))
    labels = np.array([p.same for p in pairs] * len(GATE_SCALES))
    eyes, calls = [], []
    for scale in GATE_SCALES:
        log.info("fitting the quality gate: View 1 at x%g", scale)
        faces = detect_images(paths, detector, pick="center", scale=scale)
        quality = assess_images(faces, members[0].template, scale)
        scores = pair_scores(pairs, embed_images(faces, members, scale=scale))
        eyes += [
            min(q.eye_distance if q else 0.0 for q in (quality[p.left], quality[p.right]))
            for p in pairs
        ]
        calls.append(verdicts(scores, threshold, band))
    limit = smallest_limit(np.array(eyes), np.concatenate(calls), labels)
    return {"min_eye_distance": limit, "rule": GATE_RULE, "pairs": len(labels)}


def pair_scores(pairs: Sequence[Pair], embeddings: dict[Path, np.ndarray]) -> np.ndarray:
    """Cosine similarity of each pair."""
    return np.array([float(np.dot(embeddings[p.left], embeddings[p.right])) for p in pairs])


def pair_metrics(pairs: Sequence[Pair], scores: np.ndarray) -> dict:
    """Accuracy (k-fold when the pairs have folds, else at the best threshold), TAR at FAR,
    AUC and score distributions."""
    labels = np.array([p.same for p in pairs])
    report: dict = {"pairs": len(pairs), "positives": int(labels.sum())}
    if all(p.fold is not None for p in pairs) and len({p.fold for p in pairs}) > 1:
        report.update(kfold_accuracy(scores, labels, np.array([p.fold for p in pairs])))
    else:
        threshold, acc = best_threshold(scores, labels)
        report.update({"accuracy_best_threshold": acc, "best_threshold": threshold})
    tar, far_threshold = tar_at_far(scores, labels)
    report.update(
        {
            "tar_at_far": tar,
            "far": FAR_TARGET,
            "far_threshold": far_threshold,
            "auc": roc_auc(scores, labels),
            "similarity_same_mean": float(scores[labels].mean()),
            "similarity_different_mean": float(scores[~labels].mean()),
        }
    )
    return report


# --- runs ---------------------------------------------------------------------------------------


def fit_dlib5_box(
    faces: dict[Path, Face | None], sample: int = BOX_FIT_IMAGES, seed: int = 0
) -> dict | None:
    """Where dlib's detector draws its box around a face relative to YuNet's box (`faces`):
    medians over `sample` seeded images where both found one (None when there are none); the
    `dlib5_box` of `alignment.dlib_chip_template`."""
    found = [p for p, f in faces.items() if f is not None]
    rng = np.random.default_rng(seed)
    chosen = [found[i] for i in rng.permutation(len(found))[:sample]]
    rows = []
    for path, dlib_face in detect_images(chosen, "dlib", pick="center").items():
        if dlib_face is None:
            continue
        (xy, yy, wy, hy), (xd, yd, wd, hd) = faces[path].box, dlib_face.box
        rows.append(
            (
                ((xd + wd / 2) - (xy + wy / 2)) / wy,
                ((yd + hd / 2) - (yy + hy / 2)) / hy,
                wd / np.sqrt(wy * hy),
            )
        )
    if not rows:
        return None
    dx, dy, side = np.median(np.array(rows), axis=0)
    return {
        "centre_shift": [round(float(dx), 5), round(float(dy), 5)],
        "side": round(float(side), 5),
        "fitted_on": len(rows),
    }


def tune_template(
    paths: Sequence[Path], faces: dict[Path, Face | None], base: dict, embedder: Embedder
) -> tuple[dict, list[dict]]:
    """Grid search over the yunet5 template's scale (dlib chip geometry, size and padding of
    `base`), each with and without the dlib5 view (`fit_dlib5_box`), maximising the best
    balanced accuracy on `image_pairs(paths)`, TAR at FAR 1e-3 breaking ties. `faces` must be
    YuNet's. Returns the best template and every trial."""
    size = base["size"][0]
    padding = float(base.get("geometry", {}).get("padding", 0.25))
    pairs = image_pairs(paths)
    labels = np.array([p.same for p in pairs])
    box = fit_dlib5_box(faces)
    log.info("dlib box relative to YuNet's: %s", box)
    extra = {}
    if box is not None:
        dlib_faces = {
            p: dlib5_in_box(load_image(p), f, box) if f else None for p, f in faces.items()
        }
        extra = embed_images(dlib_faces, [Member(embedder, dlib_chip_template(size, padding))])
    trials: list[dict] = []
    for scale in TUNE_SCALES:
        own = embed_images(faces, [Member(embedder, dlib_chip_template(size, padding, scale))])
        for with_dlib5 in (False, True) if extra else (False,):
            emb = {p: own[p] + extra[p] if with_dlib5 else own[p] for p in own}
            emb = {p: v / np.linalg.norm(v) for p, v in emb.items()}
            scores = pair_scores(pairs, emb)
            trials.append(
                {
                    "scale": scale,
                    "dlib5_view": with_dlib5,
                    "balanced_accuracy": best_balanced_accuracy(scores, labels),
                    "tar_at_far": tar_at_far(scores, labels)[0],
                }
            )
            log.info("template trial %s", trials[-1])
    best = max(trials, key=lambda t: (t["balanced_accuracy"], t["tar_at_far"]))
    template = dlib_chip_template(
        size, padding, best["scale"], dlib5_box=box if best["dlib5_view"] else None
    )
    return template, trials


@dataclass(frozen=True)
class Subject:
    """What an evaluation measures: the networks `members` (each an embedder with its alignment
    template and weight; one unless fused), named `name`, and `stored`, the registry calibration
    (empty for embedders outside the registry)."""

    name: str
    members: tuple[Member, ...]
    stored: dict = field(default_factory=dict)


def registry_subject(model: str | None) -> Subject:
    """Registry identity model `model` (None: the default) as an evaluation `Subject`."""
    pipeline = FacePipeline.for_model(model)
    return Subject(pipeline.model, pipeline.members, pipeline.config["faceres"])


@dataclass(frozen=True)
class LfwLists:
    """LFW's image folder and its pair lists: View 1 (DevTrain, DevTest) and View 2."""

    images: Path
    dev_train: list[Pair]
    dev_test: list[Pair]
    view2: list[Pair]

    def paths(self, lists: Sequence[Sequence[Pair]]) -> list[Path]:
        """Every image of `lists`, once, in order."""
        return list(
            dict.fromkeys(p for pairs in lists for pair in pairs for p in (pair.left, pair.right))
        )


def read_lfw(data: Path | None = None) -> LfwLists:
    """LFW under `data` (default `$FACERES_DATA/lfw`)."""
    root = lfw_dir(data)
    images = root / "lfw-deepfunneled"
    return LfwLists(
        images,
        read_lfw_pairs(root / "pairsDevTrain.txt", images),
        read_lfw_pairs(root / "pairsDevTest.txt", images),
        read_lfw_pairs(root / "pairs.txt", images),
    )


@dataclass(frozen=True)
class View1:
    """View 1's calibration: the threshold fitted on DevTrain, its DevTest accuracy, the
    uncertain band (`choose_band`) and the scores of all View 1 pairs."""

    threshold: float
    band: float
    train_accuracy: float
    test_accuracy: float
    scores: np.ndarray
    labels: np.ndarray

    def to_dict(self) -> dict:
        """The report's View 1 section (without the template trials and the gate fit)."""
        called = called_metrics(verdicts(self.scores, self.threshold, self.band), self.labels)
        return {
            "threshold": self.threshold,
            "band": self.band,
            "band_rule": BAND_RULE,
            "dev_train_accuracy": self.train_accuracy,
            "dev_test_accuracy": self.test_accuracy,
            "genuine_scores": sorted(round(float(v), 4) for v in self.scores[self.labels]),
            "impostor_scores": sorted(round(float(v), 4) for v in self.scores[~self.labels]),
            **{f"view1_{k}": v for k, v in called.items()},
        }


def calibrate_view1(lists: LfwLists, embeddings: dict[Path, np.ndarray]) -> View1:
    """The threshold with the best DevTrain accuracy, its DevTest accuracy, and the band."""
    train_labels = np.array([p.same for p in lists.dev_train])
    train_scores = pair_scores(lists.dev_train, embeddings)
    threshold, train_acc = best_threshold(train_scores, train_labels)
    test_scores = pair_scores(lists.dev_test, embeddings)
    test_acc = accuracy(test_scores, np.array([p.same for p in lists.dev_test]), threshold)
    scores = np.r_[train_scores, test_scores]
    labels = np.r_[train_labels, [p.same for p in lists.dev_test]].astype(bool)
    band = choose_band(scores, labels, threshold)
    return View1(threshold, band, train_acc, test_acc, scores, labels)


def score_view2(
    lists: LfwLists,
    embeddings: dict[Path, np.ndarray],
    quality: dict[Path, FaceQuality | None],
    view1: View1,
    rule: tuple[float, float] | None,
    gate: dict,
) -> dict:
    """View 2's 10-fold metrics and the verdicts the app would give: each fold's threshold with
    View 1's band, or, with `rule` (threshold, band), that fixed rule; `gate` the quality gate."""
    pairs = lists.view2
    scores = pair_scores(pairs, embeddings)
    metrics = pair_metrics(pairs, scores)
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    fold_threshold = dict(zip(np.unique(folds), metrics["fold_thresholds"], strict=True))
    thresholds = np.array([fold_threshold[f] for f in folds])
    band = view1.band
    if rule:
        thresholds, band = np.full(len(pairs), rule[0]), rule[1]
    gated = gated_pairs(pairs, quality, gate)
    called = called_metrics(verdicts(scores, thresholds, band, gated), labels)
    return {
        **metrics,
        "accuracy_at_view1_threshold": accuracy(scores, labels, view1.threshold),
        "verdict_rule": "the model's stored threshold and band"
        if rule
        else "10-fold thresholds, View 1's band",
        "quality_gate": gate,
        "gated": int(gated.sum()),
        **called,
        "_scores": scores,
        "_thresholds": thresholds,
        "_called": called,
    }


def tune_subject(
    subject: Subject, lists: LfwLists, faces: dict[Path, Face | None], detector: str
) -> tuple[tuple[Member, ...], list[dict]]:
    """`--tune`: the subject's one network with its template fitted on View 1 (`tune_template`),
    and every trial."""
    if detector != "yunet":
        raise DataError(
            "--tune fits the template for YuNet's landmarks; run it with the YuNet detector."
        )
    if len(subject.members) != 1:
        raise DataError("--tune fits one network's template; tune each member of a fused model.")
    (one,) = subject.members
    paths = lists.paths([lists.dev_train, lists.dev_test])
    template, trials = tune_template(
        paths, {p: faces[p] for p in paths}, one.template, one.embedder
    )
    return (replace(one, template=template),), trials


def evaluate_lfw(
    subject: Subject | str,
    data: Path | None = None,
    out_dir: Path = Path("runs/eval"),
    detector: str | None = None,
    tune: bool = False,
    fit_gate: bool = False,
    downscale: float = 1.0,
    gate: dict | None = None,
) -> dict:
    """LFW: threshold, uncertain band and score distributions (and with `tune`, template)
    calibrated on View 1; on View 2, 10-fold accuracy, TAR at FAR 1e-3, AUC, and the verdicts
    the app would give (band and quality `gate`, default the model's): the uncertain fraction, the
    accuracy of the verdicts given, and the confident wrong ones. With `fit_gate`, the quality
    gate is fitted on View 1 shrunk (`fit_quality_gate`) and used. Writes the report, its ROC and
    risk–coverage plots and the per-pair table into `out_dir`, and nothing else
    (`write_calibration` stores the calibration in the registry).

    `downscale` < 1 shrinks every image first (the quality gate's test): View 2's verdicts then
    use the model's stored threshold and band, as the app does.
    """
    subject = registry_subject(subject) if isinstance(subject, str) else subject
    if not 0 < downscale <= 1:
        raise DataError(f"--downscale must be in (0, 1], not {downscale}.")
    if downscale != 1.0 and (tune or fit_gate):
        raise DataError("--downscale tests the quality gate: no --tune or --fit-gate.")
    lists = read_lfw(data)
    paths = lists.paths([lists.dev_train, lists.dev_test, lists.view2])
    detector_name = select_detector(detector)
    log.info("detecting faces in %d images with %s", len(paths), detector_name)
    faces = detect_images(paths, detector, pick="center", scale=downscale)
    members, trials = subject.members, []
    if tune:
        members, trials = tune_subject(subject, lists, faces, detector_name)
    template = members[0].template
    embeddings = embed_images(faces, members, scale=downscale)
    quality = assess_images(faces, template, downscale)
    view1 = calibrate_view1(lists, embeddings)
    gate_fit, gate = {}, subject.stored.get("quality_gate", {}) if gate is None else gate
    if fit_gate:
        gate_fit = fit_quality_gate(
            [*lists.dev_train, *lists.dev_test],
            detector,
            members,
            view1.threshold,
            view1.band,
        )
        gate = {"min_eye_distance": gate_fit["min_eye_distance"]}
    stored = subject.stored
    rule = None
    if downscale != 1.0 and "threshold" in stored:
        rule = (float(stored["threshold"]), float(stored.get("band", view1.band)))
    view2 = score_view2(lists, embeddings, quality, view1, rule, gate)
    tag = f"{subject.name}-{detector_name}" + (f"-x{downscale:g}" if downscale != 1.0 else "")
    report = {
        "model": subject.name,
        "detector": detector_name,
        "downscale": downscale,
        "images": len(paths),
        **undetected_summary(faces, lists.images),
        "view1": {**view1.to_dict(), "template_trials": trials, "quality_gate_fit": gate_fit},
        "view2": {k: v for k, v in view2.items() if not k.startswith("_")},
        "quality": quality_summary(quality),
        "template": template if len(members) == 1 else None,
    }
    if len(members) > 1:
        report["members"] = member_reports(members, lists, embeddings, quality)
    report |= save_lfw_plots(report, view2, lists, Path(out_dir), tag)
    (Path(out_dir) / f"lfw-{tag}.json").write_text(json.dumps(report, indent=2))
    write_pair_table(
        Path(out_dir) / f"lfw-{tag}-pairs.csv",
        {"devtrain": lists.dev_train, "devtest": lists.dev_test, "view2": lists.view2},
        embeddings,
        quality,
        lists.images,
    )
    return report


def member_reports(
    members: Sequence[Member],
    lists: LfwLists,
    embeddings: dict[Path, np.ndarray],
    quality: dict[Path, FaceQuality | None],
) -> list[dict]:
    """A fused model's members alone, on the same faces: each member's part of the fused
    embeddings (`faceres.face.pipeline.split`) calibrated on View 1 and scored on View 2 as
    `evaluate_lfw` scores a model, with its own quality gate."""
    dims = [
        int(m.config["faceres"].get("embedding_size") or m.config["num_classes"]) for m in members
    ]
    parts = {path: split(e, dims) for path, e in embeddings.items()}
    rows = []
    for i, m in enumerate(members):
        own = {path: p[i] for path, p in parts.items()}
        view1 = calibrate_view1(lists, own)
        gate = m.config["faceres"].get("quality_gate", {})
        view2 = score_view2(lists, own, quality, view1, None, gate)
        keys = ("accuracy_mean", "accuracy_std", "tar_at_far", "auc", "uncertain_fraction")
        rows.append(
            {
                "model": m.name,
                "weight": m.weight,
                "view1": {k: getattr(view1, k) for k in ("threshold", "band", "test_accuracy")},
                "view2": {k: view2[k] for k in (*keys, "accuracy_called")},
            }
        )
    return rows


def undetected_summary(faces: dict[Path, Face | None], images: Path) -> dict:
    """How many images had no detected face, which, and how they were embedded."""
    undetected = sorted(str(p.relative_to(images)) for p, f in faces.items() if f is None)
    return {
        "undetected": len(undetected),
        "undetected_images": undetected,
        "undetected_rule": UNDETECTED_RULE,
    }


def save_lfw_plots(report: dict, view2: dict, lists: LfwLists, out_dir: Path, tag: str) -> dict:
    """The ROC and risk–coverage plots of View 2, saved into `out_dir`: their paths."""
    model, detector = report["model"], report["detector"]
    labels = np.array([p.same for p in lists.view2])
    fpr, tpr, _ = roc_curve(view2["_scores"], labels)
    scale = report["downscale"]
    roc = save_roc_plot(
        {f"{model} (AUC {view2['auc']:.4f})": (fpr, tpr)},
        out_dir / f"lfw-{tag}-roc.png",
        f"LFW View 2, {detector} + {model}",
    )
    coverage = save_risk_coverage_plot(
        view2["_scores"],
        labels,
        view2["_thresholds"],
        view2["_called"],
        out_dir / f"lfw-{tag}-risk-coverage.png",
        f"LFW View 2, {detector} + {model}" + (f", x{scale:g}" if scale != 1 else ""),
    )
    return {"roc_plot": str(roc), "risk_coverage_plot": str(coverage)}


def quality_summary(quality: dict[Path, FaceQuality | None]) -> dict:
    """Percentiles (1, 5, 50) of each quality field over the detected faces."""
    found = [q for q in quality.values() if q is not None]
    if not found:
        return {}
    return {
        field: {
            f"p{p}": round(float(np.percentile([getattr(q, field) for q in found], p)), 2)
            for p in (1, 5, 50)
        }
        for field in ("eye_distance", "sharpness", "abs_yaw", "score")
    }


def write_pair_table(
    path: Path,
    lists: dict[str, Sequence[Pair]],
    embeddings: dict[Path, np.ndarray],
    quality: dict[Path, FaceQuality | None],
    images: Path,
) -> Path:
    """One CSV row per pair of every list: list, fold, same, similarity, both images and their
    quality records (empty where no face was found), for analysis outside this code."""
    fields = ("eye_distance", "sharpness", "yaw", "score")
    header = ["list", "fold", "same", "similarity", "left", "right"]
    header += [f"{side}_{f}" for side in ("left", "right") for f in fields]
    rows = [",".join(header)]
    for name, pairs in lists.items():
        for pair, score in zip(pairs, pair_scores(pairs, embeddings), strict=True):
            cells = [name, "" if pair.fold is None else str(pair.fold), str(int(pair.same))]
            cells += [f"{score:.6f}", str(pair.left.relative_to(images))]
            cells += [str(pair.right.relative_to(images))]
            for p in (pair.left, pair.right):
                q = quality[p]
                cells += [f"{getattr(q, f):.3f}" if q else "" for f in fields]
            rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")
    return path


def write_calibration(report: dict) -> None:
    """Store an `evaluate_lfw` report's View 1 template, threshold and band, and its View 2
    metrics, in the registry (`faceres eval lfw --update-registry`)."""
    if report["downscale"] != 1.0:
        raise DataError("--downscale tests the quality gate: it calibrates nothing to store.")
    model = report["model"]
    registry.update_config(
        model,
        **({"alignment": report["template"]} if report["template"] else {}),
        threshold=round(report["view1"]["threshold"], 6),
        band=round(report["view1"]["band"], 6),
        band_rule=BAND_RULE,
        **(
            {
                "quality_gate": {"min_eye_distance": gate_fit["min_eye_distance"]},
                "gate_rule": GATE_RULE,
            }
            if (gate_fit := report["view1"]["quality_gate_fit"])
            else {}
        ),
        scores={
            "source": "LFW View 1 (pairsDevTrain + pairsDevTest), cosine similarity",
            "genuine": report["view1"]["genuine_scores"],
            "impostor": report["view1"]["impostor_scores"],
        },
        similarity="cosine",
        calibration="LFW View 1: threshold on pairsDevTrain, band and score distributions on "
        "pairsDevTrain + pairsDevTest"
        + (
            ", template on every same-person pair of View 1's images and "
            f"{TUNE_DIFFERENT_PAIRS:,} different-person pairs"
            if report["view1"]["template_trials"]
            else ", template as stored"
        )
        + (", quality gate on View 1 shrunk" if report["view1"]["quality_gate_fit"] else "")
        + f" (DevTest accuracy {report['view1']['dev_test_accuracy']:.4f})",
    )
    record_lfw_metrics(model, report)
    if report.get("members"):
        registry.update_card_section(model, "LFW View 2, beside its members", members_table(report))


def members_table(report: dict) -> str:
    """A fused model's View 2 figures beside each member's alone (same faces, same command)."""
    rows = [(report["model"], "", report["view2"])]
    rows += [(m["model"], f"{m['weight']:.4f}", m["view2"]) for m in report["members"]]
    lines = [
        f"| `{name}` | {weight} | {v['accuracy_mean']:.2%} ± {v['accuracy_std']:.2%} | "
        f"{v['tar_at_far']:.2%} | {v['auc']:.5f} | {v['uncertain_fraction']:.2%} | "
        f"{v['accuracy_called']:.2%} |"
        for name, weight, v in rows
    ]
    return "\n".join(
        [
            f"Printed by `faceres eval lfw --model {report['model']} --fit-gate --update-registry` "
            f"({report['detector']} detector; each member's part of the fused embeddings "
            "calibrated on View 1 as that model alone is).",
            "",
            "| model | weight | accuracy (10 folds) | TAR@FAR=1e-3 | AUC | uncertain | right on "
            "the rest |",
            "|---|---|---|---|---|---|---|",
            *lines,
        ]
    )


def record_lfw_metrics(model: str, report: dict) -> None:
    """Put an LFW report's View 2 numbers (and detection rate) into `model`'s index entry, keyed
    by the detector that found the faces."""
    view2, det = report["view2"], report["detector"]
    metrics = dict(registry.get_entry(model).get("metrics") or {})
    metrics.update(
        {
            f"lfw_accuracy_{det}": round(view2["accuracy_mean"], 5),
            f"lfw_accuracy_std_{det}": round(view2["accuracy_std"], 5),
            f"lfw_tar_at_far1e-3_{det}": round(view2["tar_at_far"], 5),
            f"lfw_auc_{det}": round(view2["auc"], 6),
            f"lfw_detection_rate_{det}": round(1 - report["undetected"] / report["images"], 5),
            f"lfw_uncertain_fraction_{det}": round(view2["uncertain_fraction"], 5),
            f"lfw_accuracy_called_{det}": round(view2["accuracy_called"], 5),
        }
    )
    registry.update_entry(model, metrics=metrics)


def evaluate_pairs(
    pairs_csv: Path,
    root: Path,
    subject: Subject | str,
    out_dir: Path = Path("runs/eval"),
    detector: str | None = None,
) -> dict:
    """Metrics of `model` on a `left,right,same[,fold]` CSV (largest face per image), ROC plot.

    >>> evaluate_pairs("pairs.csv", "photos/", "dlib-resnet29-face")["undetected"]
    0
    """
    pairs = read_pairs_csv(pairs_csv, root)
    paths = list(dict.fromkeys(p for pair in pairs for p in (pair.left, pair.right)))
    for path in paths:
        if not path.is_file():
            raise DataError(f"Image of the pair list not found: {path}")
    subject = registry_subject(subject) if isinstance(subject, str) else subject
    model = subject.name
    detector_name = select_detector(detector)
    faces = detect_images(paths, detector, pick="largest")
    scores = pair_scores(pairs, embed_images(faces, subject.members))
    report = {
        "model": model,
        "detector": detector_name,
        "images": len(paths),
        "undetected": sum(f is None for f in faces.values()),
        "undetected_rule": UNDETECTED_RULE,
        **pair_metrics(pairs, scores),
    }
    fpr, tpr, _ = roc_curve(scores, np.array([p.same for p in pairs]))
    name = Path(pairs_csv).stem
    report["roc_plot"] = str(
        save_roc_plot(
            {f"{model} (AUC {report['auc']:.4f})": (fpr, tpr)},
            Path(out_dir) / f"pairs-{name}-{model}-roc.png",
            f"{name}: {detector_name} + {model}",
        )
    )
    return report


def evaluate_detectors(
    subject: Subject | str,
    data: Path | None = None,
    out_dir: Path = Path("runs/eval"),
    detectors: Sequence[str] = tuple(BACKENDS),
) -> dict:
    """Per detector: the share of LFW pair-list images with a detected face, and `model`'s LFW
    View 2 accuracy through that detector (nothing written to the registry:
    `record_lfw_metrics` does that). A detector that is not available here is reported as such.

    >>> evaluate_detectors("dlib-resnet29-face")["detectors"]["dlib"]["detection_rate"]
    0.999
    """
    subject = registry_subject(subject) if isinstance(subject, str) else subject
    results: dict[str, dict] = {}
    for name in detectors:
        if not backend(name).available():
            results[name] = {"available": False}
            continue
        report = evaluate_lfw(subject, data, out_dir, detector=name)
        view2 = report["view2"]
        results[name] = {
            "available": True,
            "images": report["images"],
            "undetected": report["undetected"],
            "detection_rate": 1 - report["undetected"] / report["images"],
            "accuracy_mean": view2["accuracy_mean"],
            "accuracy_std": view2["accuracy_std"],
            "tar_at_far": view2["tar_at_far"],
            "auc": view2["auc"],
            "roc_plot": report["roc_plot"],
            "report": report,
        }
    return {"model": subject.name, "detectors": results}
