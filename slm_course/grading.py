"""PLACEHOLDER — being written (issue 4)."""
from __future__ import annotations
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
