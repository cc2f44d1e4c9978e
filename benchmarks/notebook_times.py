"""Time every notebook under nbval (as CI runs it) and print the table instructors see in the README.

Usage: python benchmarks/notebook_times.py [NOTEBOOK ...]   (default: notebooks/ and solutions/)
Budgets (DESIGN.md): a chapter notebook <= 150 s (ceiling 180 s), a solutions notebook <= 60 s.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"notebooks": 150, "solutions": 60}


def main(paths: list[str]) -> int:
    notebooks = [Path(p).resolve() for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "solutions").glob("*.ipynb")
    )
    print(f"{'notebook':45s} {'seconds':>8s} {'budget':>7s}  result")
    over = 0
    for path in notebooks:
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(path)],
            cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(),
        )
        seconds = time.perf_counter() - start
        budget = BUDGET.get(path.parent.name, 150)
        verdict = "passed" if run.returncode == 0 else "FAILED"
        if seconds > budget:
            verdict += " (over budget)"
            over += 1
        print(f"{path.parent.name + '/' + path.name:45s} {seconds:8.1f} {budget:7d}  {verdict}", flush=True)
    print(f"cores: {os.cpu_count()}; seconds include kernel start-up (~2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
