"""Fixtures shared by every test: where the development corpus lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The corpus: $SMBWATCH_SHARED, else ../shared beside the checkout, else /work/shared."""
    candidates = [os.environ.get("SMBWATCH_SHARED"), REPO.parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "data").is_dir():
            return Path(candidate)
    raise RuntimeError("the shared corpus (../shared/data) is missing: set SMBWATCH_SHARED")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real captures and Windows logs (read-only)."""
    return shared_dir() / "data"


@pytest.fixture(scope="session")
def shared_sigma() -> Path:
    """``../shared/sigma``: the public Sigma rules."""
    return shared_dir() / "sigma"
