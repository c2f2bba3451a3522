"""Shared pytest configuration for the trio_upgrade test suite."""

from __future__ import annotations

# The upgrade_server fixture, as applications would enable it.
pytest_plugins = ["trio_upgrade.testing.pytest_plugin"]
