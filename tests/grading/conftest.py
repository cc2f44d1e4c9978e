"""Fixtures of the grader's tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def outside_tmp():
    """A folder outside /tmp (which the sandbox replaces anyway), so hiding it is really tested."""
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="slm-grade-test-", dir=base))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
