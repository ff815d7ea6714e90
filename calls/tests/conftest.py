"""Fixtures shared with the voice and greenlights tests: the live server (daphne in a
process of its own) and headless Chromium."""

from greenlights.tests.test_browser import browser
from voice.tests.conftest import live_server_process

__all__ = ["browser", "live_server_process"]
