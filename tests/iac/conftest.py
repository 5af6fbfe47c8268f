"""Fixtures for the package tests (helpers are in iac_support.py)."""

from __future__ import annotations

import pytest

from efsctl.stack import package as packaging


@pytest.fixture(scope="session")
def code() -> packaging.Package:
    return packaging.build()
