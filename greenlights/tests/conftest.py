"""Live-server fixtures shared with the voice tests."""

from voice.tests.conftest import live_server_process

__all__ = ["live_server_process"]
