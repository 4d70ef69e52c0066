"""Loopback ports, HTTP readiness and process helpers for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2.0)
    except httpx.TransportError:
        return False
    return True


def wait_http(url: str, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Poll ``url`` until it gives any HTTP response; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if time.monotonic() >= deadline:
            msg = f"no HTTP response from {url} within {timeout:.1f}s"
            raise TimeoutError(msg)
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return _signal_zero(pid)
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def _signal_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """Stop process ``pid`` (not necessarily our child): SIGTERM, SIGKILL after ``grace`` s."""
    if not pid_alive(pid):
        return
    _send(pid, signal.SIGTERM)
    if _wait_gone(pid, grace):
        return
    _send(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        msg = f"process {pid} survived SIGKILL"
        raise RuntimeError(msg)


def kill_pid(pid: int) -> None:
    """SIGKILL process ``pid`` and wait until it is gone."""
    _send(pid, signal.SIGKILL)
    _wait_gone(pid, 10.0)
