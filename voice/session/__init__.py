"""Realtime sessions: what answers the caller. ``create_session`` picks one from settings."""
