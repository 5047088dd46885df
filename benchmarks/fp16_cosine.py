"""How far the registry's fp16 weights move dlib-resnet29-face's embeddings from dlib's fp32 ones.

Converts dlib's original `dlib_face_recognition_resnet_model_v1.dat` (PyPI
`face_recognition_models`, the `convert` extra) to an fp32 model, loads the registry's model
(weights stored as fp16), embeds the same aligned face chips with both through the verify
pipeline's `embed_crops` (flip test-time augmentation included) and reports 1 − cosine per chip:
the maximum and the median. The chips: the faces of the first `--faces` images of LFW's
pairsDevTrain.txt (all alignment views) when LFW is in FACERES_DATA, else scikit-image's
astronaut, rotated and re-lit.

    python benchmarks/fp16_cosine.py [--faces 100]

The result is written to benchmarks/results/fp16_cosine.json (`--out`).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from record import add_out_argument, save

from faceres import registry
from faceres.convert.dlib import dlib_resnet_from_file, find_dlib_file
from faceres.detect import detect_faces
from faceres.eval.lfw import choose_face, lfw_dir, read_lfw_pairs
from faceres.face.align import model_template, views
from faceres.face.pipeline import embed_crops
from faceres.imageio import load_image

MODEL = "dlib-resnet29-face"


def face_images(count: int) -> tuple[list[np.ndarray], str]:
    """Up to `count` RGB photos with a face, and where they come from."""
    try:
        root = lfw_dir()
    except Exception:  # noqa: BLE001 - no LFW here: fall back on the sample photo
        root = None
    if root is not None:
        pairs = read_lfw_pairs(root / "pairsDevTrain.txt", root / "lfw-deepfunneled")
        paths = list(dict.fromkeys(p for pair in pairs for p in (pair.left, pair.right)))
        return [load_image(p) for p in paths[:count]], "LFW pairsDevTrain.txt images"
    from PIL import Image
    from skimage import data

    astro = Image.fromarray(data.astronaut())
    images = []
    for i in range(count):
        turned = np.asarray(astro.rotate(-15 + 30 * i / max(1, count - 1)), np.float32)
        images.append(np.clip(turned * (0.7 + 0.6 * (i % 5) / 4), 0, 255).astype(np.uint8))
    return images, "scikit-image astronaut, rotated and re-lit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100, help="photos to take faces from")
    add_out_argument(parser, "fp16_cosine")
    args = parser.parse_args()

    fp16 = registry.load(MODEL, device="cpu")
    fp32 = registry.LoadedModel(
        name=f"{MODEL} (fp32)",
        model=dlib_resnet_from_file(find_dlib_file("dlib-resnet")).float().eval(),
        config=fp16.config,
        device=fp16.device,
    )
    template = model_template(fp16.config)
    images, source = face_images(args.faces)
    crops = []
    for image in images:
        face = choose_face(detect_faces(image), image.shape, "center")
        if face is not None:
            crops += views(image, face, template)
    gaps = []
    for start in range(0, len(crops), 32):
        batch = crops[start : start + 32]
        a, b = embed_crops(batch, fp16), embed_crops(batch, fp32)
        gaps += (1.0 - np.sum(a.astype(np.float64) * b, axis=1)).tolist()
    gaps_arr = np.asarray(gaps)
    data = {
        "model": MODEL,
        "photos": len(images),
        "chips": len(gaps),
        "source": source,
        "one_minus_cosine_max": float(gaps_arr.max()),
        "one_minus_cosine_median": float(np.median(gaps_arr)),
    }
    save(data, args.out)
    print(json.dumps(data))


if __name__ == "__main__":
    main()
