"""PLACEHOLDER — being written (issue 2). API contract for other modules:

asset_path(name) -> Path      folder holding the unpacked members of asset `name` (fetches if missing)
fetch(name) -> Path
"""
from __future__ import annotations
import argparse
from pathlib import Path


def asset_path(name: str) -> Path:
    raise NotImplementedError


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--list", action="store_true")


def run_fetch(args: argparse.Namespace) -> int:
    return 0
