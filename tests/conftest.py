"""Fixtures shared by every test (where the development corpus lives), and the test tiers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIERS = ("unit", "oracle", "lab", "fuzz")  # the markers of pyproject.toml, one per test


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one tier (a ``pytestmark`` of its module), so that
    ``pytest -m unit`` runs all of the fast tier and nothing else."""
    wrong = [
        item.nodeid
        for item in items
        if len({mark.name for mark in item.iter_markers() if mark.name in TIERS}) != 1
    ]
    if wrong:
        raise pytest.UsageError(f"tests in no tier or in several ({', '.join(TIERS)}): {wrong}")


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
