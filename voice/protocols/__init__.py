"""The fork modules' wire protocols, each pinned to its C source (see SOURCES.md)."""
