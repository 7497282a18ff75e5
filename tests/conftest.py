import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def venv_python() -> str:
    return sys.executable


def pytest_configure(config):
    # Programs started by tests must find the package and the runners.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
