"""`faceres eval …`: benchmark numbers. One sub-command per evaluation (lfw, pairs, …)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from faceres.datasets.fer import FER_SPLITS
from faceres.detect import BACKENDS, DETECTORS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` group and its sub-commands."""
    group = subparsers.add_parser("eval", help="evaluate models on benchmarks")
    sub = group.add_subparsers(dest="evaluation", required=True, metavar="EVALUATION")
    _add_lfw(sub)
    _add_fuse(sub)
    _add_pairs(sub)
    _add_detect(sub)
    _add_expression(sub)
    _add_explain(sub)
    _add_identify(sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="identity model from the registry (default: the default one)")
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        help="face detector (default: the FACERES_DETECTOR setting, else auto)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/eval"),
        help="folder for the report JSON and plots (default runs/eval)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON only")


def _add_lfw(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lfw",
        help="LFW: View 1 calibration, View 2 10-fold accuracy, TAR@FAR, AUC",
        description="Calibrate the threshold (and with --tune, the alignment template) on LFW "
        "View 1 and report View 2 (10 folds, each threshold chosen on the other "
        "nine); read-only unless --update-registry.",
    )
    _common(p)
    p.add_argument("--data", type=Path, help="LFW folder (default: $FACERES_DATA/lfw)")
    p.add_argument(
        "--tune",
        action="store_true",
        help="tune the alignment template on View 1's images first (YuNet only)",
    )
    p.add_argument(
        "--downscale",
        type=float,
        default=1.0,
        metavar="S",
        help="shrink every image to S times its size first (0 < S <= 1): how the quality gate "
        "holds up on small faces",
    )
    p.add_argument(
        "--fit-gate",
        action="store_true",
        help="fit the quality gate's eye-distance limit on View 1 shrunk to 0.4 and 0.25 first",
    )
    p.add_argument(
        "--update-registry",
        dest="write",
        action="store_true",
        help="write the calibration and View 2 metrics into the model's registry "
        "config, card and index entry",
    )
    p.set_defaults(func=run_lfw)


def _add_fuse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse",
        help="a fused identity model (weights fitted on LFW View 1 DevTrain) or an expression "
        "ensemble of registry models",
        description="Identity members: weights of the members' cosine similarities fitted on LFW "
        "View 1 DevTrain (Fisher's discriminant of z-normalised scores); each member's and the "
        "fusion's DevTest accuracy; then calibrate it with `faceres eval lfw --model NAME "
        "--fit-gate --update-registry`. Expression members: an ensemble averaging their "
        "probabilities (equal weights), each member's PublicTest accuracy. With "
        "--update-registry, the fused model is written into the registry.",
    )
    p.add_argument(
        "--members", nargs="+", required=True, help="registry identity or expression models"
    )
    p.add_argument("--name", required=True, help="registry name of the fused model")
    p.add_argument(
        "--data", type=Path, help="LFW or FER2013 folder (default: $FACERES_DATA/lfw or fer2013)"
    )
    p.add_argument("--detector", help="face detector (default: auto)")
    p.add_argument("--update-registry", dest="write", action="store_true")
    p.add_argument("--default", action="store_true", help="make it the default model of its task")
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.set_defaults(func=run_fuse)


def run_fuse(args: argparse.Namespace) -> int:
    from faceres import registry
    from faceres.eval.fusion import fit_ensemble, fit_fusion, write_fusion

    _setup_logging(args.json)
    if registry.get_entry(args.members[0])["task"] == "expression":
        return _ensemble(args, fit_ensemble(args.members, data=args.data))
    report = fit_fusion(args.members, data=args.data, detector=args.detector)
    if args.write:
        report["folder"] = str(write_fusion(args.name, report, default=args.default))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for m in report["members"]:
        print(f"{m['model']}: weight {m['weight']:.4f}, DevTest {m['dev_test_accuracy']:.2%}")
    print(f"{args.name}: DevTest {report['dev_test_accuracy']:.2%} ({report['rule']})")
    return 0


def _ensemble(args: argparse.Namespace, report: dict) -> int:
    from faceres.eval.fusion import write_fusion

    if args.write:
        report["folder"] = str(write_fusion(args.name, report, default=args.default))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    for m in report["members"]:
        print(f"{m['model']}: weight {m['weight']:.4f}, PublicTest {m['public_test_accuracy']:.2%}")
    print(f"{args.name}: {report['rule']}; score it with `faceres eval expression --model NAME`")
    return 0


def _add_pairs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pairs",
        help="any pair list: CSV with left,right,same[,fold]",
        description="Accuracy (k-fold when the CSV has folds), TAR@FAR 1e-3 and AUC of a pair "
        "list.",
    )
    _common(p)
    p.add_argument("--pairs", type=Path, required=True, help="CSV with left,right,same[,fold]")
    p.add_argument("--root", type=Path, required=True, help="folder the image paths are under")
    p.set_defaults(func=run_pairs)


def _add_expression(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "expression",
        help="expression accuracy, per-class precision/recall, confusion matrix",
        description="Score an expression model on a folder of class-named sub-folders or on a "
        "FER2013 split (FER+ models: FER+ majority labels).",
    )
    p.add_argument("--model", help="expression model (default: the default one)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--folder", type=Path, help="folder of <class>/<image> files")
    where.add_argument("--split", choices=FER_SPLITS, help="a FER2013 split under --data")
    p.add_argument("--data", type=Path, help="FER2013 folder (default: $FACERES_DATA/fer2013)")
    p.add_argument(
        "--faces",
        choices=("crop", "detect"),
        help="crop: images are face crops; detect: photos (default: by image size)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/eval"),
        help="folder for the confusion-matrix plot (default runs/eval)",
    )
    p.add_argument(
        "--views",
        choices=("mirror", "single"),
        help="test-time views of face crops: the face and its mirror image, or the face alone "
        "(default: the model's config); with --update-registry, stored as the model's own",
    )
    p.add_argument(
        "--update-registry",
        action="store_true",
        help="write the split's accuracy into the model's card and index entry",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.set_defaults(func=run_expression)


def run_expression(args: argparse.Namespace) -> int:
    from faceres import registry
    from faceres.eval.fer import evaluate_expression, format_report, record_metric

    name = args.model or registry.default_model("expression")
    report = evaluate_expression(
        name,
        folder=args.folder,
        split=args.split,
        faces=args.faces,
        data=args.data,
        plot=args.out / f"confusion-{name}-{args.split or 'folder'}.png",
        views=args.views,
    )
    if args.update_registry:
        if not args.split:
            from faceres.errors import DataError

            raise DataError("--update-registry needs --split (a FER2013 split).")
        if args.views:
            registry.update_config(name, views=args.views)
        record_metric(name, args.split, report)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="LFW detection rate and View 2 accuracy with each face detector",
        description="For each detector: the share of the LFW pair-list images where a face is "
        "detected, and the identity model's LFW View 2 accuracy through it.",
    )
    p.add_argument("--model", help="identity model from the registry (default: the default one)")
    p.add_argument("--data", type=Path, help="LFW folder (default: $FACERES_DATA/lfw)")
    p.add_argument(
        "--detectors",
        default=",".join(BACKENDS),
        help=f"comma-separated (default {','.join(BACKENDS)})",
    )
    p.add_argument(
        "--update-registry",
        dest="write",
        action="store_true",
        help="write the numbers into the model's card and index entry",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/eval"),
        help="folder for the reports and ROC plots (default runs/eval)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.set_defaults(func=run_detect)


def _model_name(model: str | None) -> str:
    from faceres import registry

    return model or registry.default_model("identity")


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )


def _print_identity(report: dict) -> None:
    print(
        f"model {report['model']}, detector {report['detector']}: {report['images']} images, "
        f"{report['undetected']} without a detected face ({report['undetected_rule']})"
    )
    if "view1" in report:
        v1 = report["view1"]
        print(
            f"View 1: threshold {v1['threshold']:.4f} ± band {v1['band']:.4f} "
            f"(DevTrain {v1['dev_train_accuracy']:.2%}, DevTest {v1['dev_test_accuracy']:.2%})"
        )
        v2 = report["view2"]
        print(
            f"View 2 verdicts: {v2['uncertain_fraction']:.2%} uncertain "
            f"({v2['gated']} pairs by the quality gate), {v2['accuracy_called']:.2%} right on the "
            f"rest; confidently wrong: {v2['confident_wrong_same']:.2%} 'same', "
            f"{v2['confident_wrong_different']:.2%} 'different' (of all pairs)"
        )
    m = report.get("view2", report)
    if "accuracy_mean" in m:
        print(
            f"accuracy {m['accuracy_mean']:.2%} ± {m['accuracy_std']:.2%} "
            f"({len(m['fold_accuracies'])} folds)"
        )
    else:
        print(
            f"accuracy {m['accuracy_best_threshold']:.2%} at the best threshold "
            f"{m['best_threshold']:.4f} (no folds: optimistic)"
        )
    print(f"TAR {m['tar_at_far']:.2%} at FAR {m['far']:g}; ROC AUC {m['auc']:.5f}")
    for member in report.get("members", []):
        v = member["view2"]
        print(
            f"  {member['model']} alone (weight {member['weight']:.4f}): accuracy "
            f"{v['accuracy_mean']:.2%} ± {v['accuracy_std']:.2%}, TAR {v['tar_at_far']:.2%}, "
            f"{v['uncertain_fraction']:.2%} uncertain, {v['accuracy_called']:.2%} right on the rest"
        )
    print(f"ROC plot: {report['roc_plot']}")
    if "risk_coverage_plot" in report:
        print(f"risk-coverage plot: {report['risk_coverage_plot']}")


def run_lfw(args: argparse.Namespace) -> int:
    from faceres.errors import DataError
    from faceres.eval.lfw import evaluate_lfw, write_calibration

    _setup_logging(args.json)
    if args.write and args.downscale != 1.0:
        raise DataError("--downscale tests the quality gate: no --update-registry.")
    report = evaluate_lfw(
        _model_name(args.model),
        data=args.data,
        out_dir=args.out,
        detector=args.detector,
        tune=args.tune,
        downscale=args.downscale,
        fit_gate=args.fit_gate,
    )
    if args.write:
        write_calibration(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_identity(report)
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    from faceres.eval.lfw import evaluate_pairs

    _setup_logging(args.json)
    report = evaluate_pairs(
        args.pairs, args.root, _model_name(args.model), out_dir=args.out, detector=args.detector
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_identity(report)
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from faceres.errors import FaceresError
    from faceres.eval.lfw import evaluate_detectors, record_lfw_metrics

    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    unknown = set(detectors) - set(BACKENDS)
    if unknown:
        raise FaceresError(
            f"--detectors takes {', '.join(BACKENDS)}, not {', '.join(sorted(unknown))}."
        )
    _setup_logging(args.json)
    report = evaluate_detectors(
        _model_name(args.model),
        data=args.data,
        out_dir=args.out,
        detectors=detectors,
    )
    for r in report["detectors"].values():
        full = r.pop("report", None)
        if full and args.write:
            record_lfw_metrics(report["model"], full)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, r in report["detectors"].items():
        if not r["available"]:
            print(f"{name}: not available here")
            continue
        print(
            f"{name}: faces in {r['detection_rate']:.2%} of {r['images']} images; "
            f"{report['model']} View 2 accuracy {r['accuracy_mean']:.2%} ± "
            f"{r['accuracy_std']:.2%}, TAR {r['tar_at_far']:.2%} at FAR 1e-3, AUC {r['auc']:.5f}"
        )
    return 0


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="are the verification maps faithful? deletion test on LFW View 1 same-person pairs",
        description="Mask the 10%% of each aligned face's pixels its map ranks most supporting "
        "(one face at a time, the crop's mean colour) and compare the similarity drop with "
        "masking 10%% random pixels; deletion curve up to 50%%.",
    )
    _common(p)
    p.add_argument("--pairs", type=int, default=200, help="pairs to explain (default 200)")
    p.add_argument("--data", type=Path, help="LFW folder (default: $FACERES_DATA/lfw)")
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from faceres.errors import FaceresError
    from faceres.eval.faithfulness import evaluate_explain

    if args.pairs < 1:
        raise FaceresError("--pairs must be at least 1.")
    _setup_logging(args.json)
    report = evaluate_explain(
        args.model, data=args.data, pairs=args.pairs, detector=args.detector, out_dir=args.out
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['pairs']} LFW View 1 same-person pairs ({report['model']}, "
        f"{report['detector']}; {len(report['skipped'])} skipped without a face), "
        f"{report['fraction']:.0%} of a face's pixels masked, {report['masking']}"
    )
    print(
        f"similarity drop: map's top pixels {report['drop_top']:.4f}, random pixels "
        f"{report['drop_random']:.4f} (mean of {report['random_draws']}); ratio "
        f"{report['ratio']:.2f} (medians {report['ratio_median']:.2f}); top beats random in "
        f"{report['top_beats_random']:.0%} of pairs"
    )
    print(f"deletion curve: {report['plot']}")
    return 0


def _add_identify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identify",
        help="1:N: open-set identification (and clustering) on a folder of people",
        description="A person is a first-level folder under --root. The first image of each "
        "person with two or more is the gallery, their other images genuine probes, people with "
        "one image impostor probes: rank-1, rank-5, DIR at FAR 1e-2 with the model's hub "
        "correction (and without it: *_raw); then every image's face clustered as `faceres "
        "eval cluster` does.",
    )
    _common(p)
    p.add_argument("--root", type=Path, required=True, help="folder of person folders")
    p.add_argument("--no-cluster", action="store_true", help="identification only")
    _fit_args(p, "the hub correction (k, weight)")
    p.set_defaults(func=run_identify)

    c = sub.add_parser(
        "cluster",
        help="1:N: group a folder of people's faces, scored against the folders",
        description="Every image under --root (a person is a first-level folder) grouped with "
        "the model's clustering threshold and linkage: pairwise and BCubed precision, recall "
        "and F1, clusters found vs true.",
    )
    _common(c)
    c.add_argument("--root", type=Path, required=True, help="folder of person folders")
    _fit_args(c, "the clustering threshold and linkage (highest BCubed F1)")
    c.set_defaults(func=run_cluster)


def _fit_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--fit-view1",
        action="store_true",
        help=f"fit {what} on the images of LFW View 1's people (pairsDevTrain + pairsDevTest, "
        "read from the folder above --root) and evaluate with it",
    )
    p.add_argument(
        "--update-registry",
        action="store_true",
        help="with --fit-view1: store the fit in the model's registry config",
    )


def _cluster_line(c: dict) -> str:
    return (
        f"threshold {c['threshold']:g} ({c['linkage']} linkage): pairwise P/R/F1 "
        f"{c['pairwise_precision']:.4f}/{c['pairwise_recall']:.4f}/{c['pairwise_f1']:.4f}, "
        f"BCubed P/R/F1 {c['bcubed_precision']:.4f}/{c['bcubed_recall']:.4f}/"
        f"{c['bcubed_f1']:.4f}; {c['clusters_found']} clusters (+{c['unassigned']} unassigned) "
        f"vs {c['clusters_true']} people"
    )


def _check_fit_args(args: argparse.Namespace) -> None:
    from faceres.errors import FaceresError

    if args.update_registry and not args.fit_view1:
        raise FaceresError("--update-registry stores a fit: add --fit-view1.")


def run_identify(args: argparse.Namespace) -> int:
    from faceres.eval.identify import evaluate_identify

    _check_fit_args(args)
    _setup_logging(args.json)
    report = evaluate_identify(
        args.root,
        model=args.model,
        detector=args.detector,
        out_dir=args.out,
        cluster=not args.no_cluster,
        fit_view1=args.fit_view1,
        update_registry=args.update_registry,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['model']} on {report['root']}: gallery {report['gallery']}, genuine probes "
        f"{report['genuine_probes']}, impostor probes {report['impostor_probes']}"
    )
    hub = report["hub"]
    print(
        f"rank-1 {report['rank1']:.4f}, rank-5 {report['rank5']:.4f}, "
        f"DIR@FAR 1e-2 {report['dir_at_far_1e-2']:.4f} "
        + (f"(hub correction k {hub['k']}, weight {hub['weight']}; " if hub else "(")
        + f"raw cosine: rank-1 {report['rank1_raw']:.4f}, "
        f"DIR@FAR 1e-2 {report['dir_at_far_1e-2_raw']:.4f})"
    )
    if "hub_fit" in report:
        for part in ("view1", "outside_view1"):
            m = report["hub_fit"][part]
            print(
                f"{part} ({m['people']} people): DIR@FAR 1e-2 {m['dir_at_far_1e-2_raw']:.4f} -> "
                f"{m['dir_at_far_1e-2']:.4f}, rank-1 {m['rank1_raw']:.4f} -> {m['rank1']:.4f}"
            )
    if "cluster" in report:
        print("clustering: " + _cluster_line(report["cluster"]))
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    from faceres.eval.identify import evaluate_cluster

    _check_fit_args(args)
    _setup_logging(args.json)
    report = evaluate_cluster(
        args.root,
        model=args.model,
        detector=args.detector,
        out_dir=args.out,
        fit_view1=args.fit_view1,
        update_registry=args.update_registry,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['model']} on {report['root']}: {report['images']} images")
    if "view1_fit" in report:
        fit = report["view1_fit"]
        print(
            f"fitted on View 1 ({fit['people']} people, {fit['images']} images, BCubed F1 "
            f"{fit['bcubed_f1']:.4f})"
        )
        print(
            "at the verification threshold: " + _cluster_line(report["at_verification_threshold"])
        )
        out = report["outside_view1"]
        print(
            f"outside View 1 ({out['people']} people, {out['images']} images): BCubed F1 "
            f"{out['at_verification_threshold']['bcubed_f1']:.4f} at the verification threshold, "
            f"{out['fitted']['bcubed_f1']:.4f} fitted"
        )
    print(_cluster_line(report["cluster"]))
    return 0
