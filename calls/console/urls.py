"""The console's pages, under ``/console/`` (tomsite.urls)."""

from __future__ import annotations

from django.urls import URLPattern, path

from calls.console import recordings, stale, testcall, views

app_name = "console"

urlpatterns: list[URLPattern] = [
    path("", views.board, name="board"),
    path("events", views.board_events, name="board-events"),
    path("calls/<str:uuid>/", views.call_page, name="call"),
    path("calls/<str:uuid>/events", views.call_events, name="call-events"),
    path("calls/<str:uuid>/hangup", views.hang_up, name="hangup"),
    path("calls/<str:uuid>/recording/stop", views.recording_stop, name="recording-stop"),
    path("calls/<str:uuid>/close", stale.close_stale, name="close-stale"),
    path("calls/<str:uuid>/recording.wav", recordings.recording_audio, name="recording"),
    path("call-tom/", testcall.test_call, name="test-call"),
]
