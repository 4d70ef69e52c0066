"""Placeholder: the os_release detector is being written."""

from __future__ import annotations

from trustyard.scanning.detectors._placeholder import Placeholder

DETECTOR = Placeholder("os_release")
