"""Metrics (L1): counts per process in a `Recorder` (recorder.py) that the composition roots
build and hand to the observers, shared across processes through files, and their Prometheus
exposition (exposition.py). The HTTP edge that serves them is metrics_http/ (L3)."""
