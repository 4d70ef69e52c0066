"""Placeholder: the rust detector is being written."""

from __future__ import annotations

from trustyard.scanning.detectors._placeholder import Placeholder

DETECTOR = Placeholder("rust")
