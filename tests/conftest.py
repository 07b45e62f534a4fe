"""
pytest's view of the suite: every test under tests/system/ (real sockets,
processes, Redis, a browser) carries the C{system} marker, so

    python -m pytest -m "not system" tests

runs the in-memory layer alone.  trial ignores this file and runs everything.
"""

import os

import pytest

SYSTEM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "system") + os.sep


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "system: uses real sockets, processes, Redis or a browser (every test under tests/system/)"
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.path).startswith(SYSTEM):
            item.add_marker(pytest.mark.system)
