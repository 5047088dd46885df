"""The `faceres` command: one argparse parser, one sub-module per command group.

Each module in `faceres.cli` named in `GROUPS` defines `add_parser(subparsers)`, which adds its
command(s) and sets `func` (called with the parsed `argparse.Namespace`, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from faceres.errors import FaceresError

GROUPS = (
    "registry",
    "convert",
    "verify",
    "explain",
    "index",
    "export",
    "expression",
    "eval",
    "train",
    "study",
    "space",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every group added."""
    parser = argparse.ArgumentParser(prog="faceres", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        importlib.import_module(f"{__name__}.{group}").add_parser(sub)
    return parser


def say_fallback(args: argparse.Namespace) -> None:
    """For a command that finds faces (`--detector`): when auto cannot run the preferred
    detector, say on stderr which one runs instead and what it misses."""
    if not hasattr(args, "detector"):
        return
    from faceres.detect import fallback_note, select_detector

    note = fallback_note(args.detector, select_detector(args.detector))
    if note:
        print(f"faceres: note: {note}", file=sys.stderr)


def say_first_use(args: argparse.Namespace) -> None:
    """For a command that runs a model of a `task`: when this run first prepares the model on
    this machine (its ONNX export, seconds, once), say so on stderr before the wait."""
    if not hasattr(args, "task") or not hasattr(args, "model"):
        return
    from faceres import registry
    from faceres.registry.runtime import first_use

    if first_use(args.task, args.model):
        name = registry.task_model(args.task, args.model)
        print(
            f"faceres: note: preparing {name} for its first use on this machine "
            "(an ONNX export: a few seconds, once)",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one line on stderr and a non-zero exit on failure."""
    args = build_parser().parse_args(argv)
    # huggingface_hub warns on every retry of a failing download: our one-line error says it all
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    if hasattr(signal, "SIGXFSZ"):  # a file-size limit: a write error to report, not a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        say_fallback(args)
        say_first_use(args)
        return int(args.func(args) or 0)
    except FaceresError as exc:
        print(f"faceres: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceres: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("faceres: error: out of memory", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (`faceres … | head`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141  # 128 + SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
