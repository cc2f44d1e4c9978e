"""The ``slm-course`` command: fetch assets, build shared models, build/start exercises, grade."""
from __future__ import annotations

import argparse
import sys


def _build_exercises(args: argparse.Namespace) -> int:
    from slm_course.exercises.build import build_exercises, stale_files

    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}")
        if stale:
            print("exercises/ is out of date with solutions/: run `slm-course build-exercises`.")
        return 1 if stale else 0
    changed = build_exercises()
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} file(s) changed.")
    return 0


def _start(args: argparse.Namespace) -> int:
    from slm_course.exercises.build import start

    start(args.chapter, force=args.force, open_lab=not args.no_open)
    return 0


def _build_shared(args: argparse.Namespace) -> int:
    from slm_course.shared import build_all

    build_all(names=args.names or None)
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The ``slm-course`` argument parser with its subcommands."""
    from slm_course import assets, grading

    parser = argparse.ArgumentParser(prog="slm-course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="download, verify and cache course assets (offline afterwards)")
    assets.add_fetch_arguments(fetch)
    fetch.set_defaults(func=assets.run_fetch)

    shared = sub.add_parser("build-shared", help="build the models several chapters share (cached)")
    shared.add_argument("names", nargs="*", help="what to build (default: everything)")
    shared.set_defaults(func=_build_shared)

    build = sub.add_parser("build-exercises", help="write exercises/ from solutions/")
    build.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    build.set_defaults(func=_build_exercises)

    start = sub.add_parser("start", help="copy an exercise notebook into work/ and open it")
    start.add_argument("chapter", help="chapter number, e.g. 01")
    start.add_argument("--force", action="store_true", help="start over (your copy is kept as .bak)")
    start.add_argument("--no-open", action="store_true", help="copy only; do not launch JupyterLab")
    start.set_defaults(func=_start)

    grade = sub.add_parser("grade", help="score learners' exercise notebooks in a sandbox")
    grading.add_arguments(grade)
    grade.set_defaults(func=grading.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``slm-course ARGS``; errors a user can fix print one sentence, not a traceback."""
    from slm_course.assets import AssetError

    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AssetError as error:  # fetching failed (offline, bad index): the message says what to do
        print(f"slm-course {args.command}: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"slm-course {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
