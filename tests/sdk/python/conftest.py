"""Fixtures for the Python SDK tests: they run against the installed wheel (a fresh virtualenv)
and its `capsule` binary, never against this repository's sources."""

import shutil
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A directory holding copies of the task fixtures; the current directory during the test."""
    for source in FIXTURES.iterdir():
        shutil.copy(source, tmp_path / source.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def installed_binary():
    """The `capsule` the wheel installed beside this interpreter."""
    return Path(sys.prefix) / "bin" / "capsule"
