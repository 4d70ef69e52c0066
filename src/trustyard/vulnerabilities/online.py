"""The online update: OSV bundles fetched over HTTP(S) and imported through the importer.

Each source is one URL of a bundle (osv.dev's `<ecosystem>/all.zip` shape), named after it
(`osv:PyPI`). A download is

- conditional: it asks with the ETag (`If-None-Match`) and Last-Modified
  (`If-Modified-Since`) of the source's last imported download; a 304 changes nothing;
- streamed to `<downloads>/<stem>.part`, never held in memory, and bounded: a declared size
  or a body over `max_bytes` stops it at once, and every read waits at most `timeout` seconds;
- resumable: a download cut off keeps its `.part` and, beside it, `.part.json` with the
  URL and the validator of the response that started it (a strong ETag, else its
  Last-Modified). The next run asks `Range: bytes=N-` with `If-Range`: a 206 appends, a 200
  (the bundle changed meanwhile) starts again.

Then the bundle is imported (atomically, `Importer.import_bundle`) and, on success, its URL
and validators are stored on the source (`VulnStore.record_origin`). A download that fails is
recorded on the source (failed_at, error); an import that fails is recorded by the importer.
Either way the source's records stay as they were, and the next source is tried.

Which sources: the configured URLs, or when there are none `<base_url>/<OSV ecosystem>/all.zip`
for every ecosystem the component index has seen (`ecosystems_of`).

On one host, a per-source file lock keeps two runs from writing the same `.part`; that only
one update runs at a time cluster-wide is the job queue's (`jobs.UPDATE_DEDUPE_KEY`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

import httpx
from sqlalchemy import Engine

from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import DomainError
from trustyard.kit.clock import utc_now
from trustyard.vulnerabilities.components import LANGUAGE_ECOSYSTEMS
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.interfaces import ImportReport
from trustyard.vulnerabilities.stores import SOURCE_CHARS, Origin, VulnStore

log = logging.getLogger(__name__)

# OS packages: OSV has an ecosystem per distribution, named by the purl's namespace (the
# distribution's os-release id).
OSV_DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "deb": {"debian": "Debian", "ubuntu": "Ubuntu"},
    "apk": {"alpine": "Alpine", "wolfi": "Wolfi", "chainguard": "Chainguard"},
    "rpm": {
        "redhat": "Red Hat",
        "rhel": "Red Hat",
        "rocky": "Rocky Linux",
        "almalinux": "AlmaLinux",
        "opensuse": "openSUSE",
        "opensuse-leap": "openSUSE",
        "opensuse-tumbleweed": "openSUSE",
        "sles": "SUSE",
        "suse": "SUSE",
        "mageia": "Mageia",
        "openeuler": "openEuler",
    },
}

PROGRESS_EVERY = 16 * 1024 * 1024  # bytes between two progress lines of a download
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

Status = Literal["imported", "not-modified", "failed"]
Progress = Callable[[str], None]


def ecosystems_of(seen: Collection[tuple[str, str]]) -> list[str]:
    """The OSV ecosystems of the (BOM ecosystem, purl namespace) pairs a registry has seen;
    ecosystems OSV has no bundle for (binary fingerprints, an unknown distribution) none."""
    found = set()
    for ecosystem, namespace in seen:
        if ecosystem in LANGUAGE_ECOSYSTEMS:
            found.add(LANGUAGE_ECOSYSTEMS[ecosystem])
        elif (name := OSV_DISTRIBUTIONS.get(ecosystem, {}).get(namespace.lower())) is not None:
            found.add(name)
    return sorted(found)


def default_sources(base_url: str, ecosystems: Sequence[str]) -> list[str]:
    base = base_url.rstrip("/")
    return [f"{base}/{quote(ecosystem, safe='')}/all.zip" for ecosystem in ecosystems]


def source_name_of(url: str) -> str:
    """`osv:<name>`: the folder of an `all.zip` (`.../PyPI/all.zip` -> `osv:PyPI`), else the
    file's name without its archive suffix."""
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    name = parts[-1] if parts else urlsplit(url).hostname or "source"
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name in ("", "all") and len(parts) > 1:
        name = parts[-2]
    return f"osv:{name or 'source'}"[:SOURCE_CHARS]


class DownloadFailed(DomainError):
    """A bundle that could not be fetched; `transient`: worth trying again soon (the network,
    a 5xx, a cut-off whose `.part` stays), else not before something changes."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    downloads: Path  # where the .part files live
    timeout: float = 60.0  # the most one read (or the connection) may wait
    max_bytes: int = 2 << 30  # one download
    user_agent: str = "trustyard-vulndb"


@dataclass(frozen=True, slots=True)
class Downloaded:
    path: Path
    etag: str | None
    last_modified: str | None
    size: int
    resumed_from: int  # 0: from the start


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    url: str
    source: str
    status: Status
    report: ImportReport | None = None
    error: str | None = None
    transient: bool = False
    downloaded_bytes: int = 0
    resumed_from: int = 0

    def line(self) -> str:
        if self.status == "not-modified":
            return f"{self.source}: not modified"
        if self.status == "failed":
            return f"{self.source}: failed: {self.error}"
        assert self.report is not None
        r = self.report
        return (
            f"{self.source}: imported {r.records} records ({r.added} added, {r.changed} "
            f"changed, {r.unchanged} unchanged, {r.removed} removed) from "
            f"{self.downloaded_bytes} bytes"
            + (f" (resumed at byte {self.resumed_from})" if self.resumed_from else "")
        )


@dataclass(frozen=True, slots=True)
class UpdateResult:
    outcomes: tuple[SourceOutcome, ...]
    stopped: bool = False  # `should_stop` said so before every source was updated

    @property
    def failed(self) -> tuple[SourceOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    def summary(self) -> str:
        if not self.outcomes:
            return "no source to update (no URL configured and no ecosystem seen yet)"
        return "; ".join(o.line() for o in self.outcomes)


class OnlineUpdater:
    def __init__(
        self,
        engine: Engine,
        importer: Importer,
        config: UpdateConfig,
        *,
        sources: Sequence[str] = (),
        base_url: str = "",
        seen: Callable[[], Collection[tuple[str, str]]] = frozenset,
        store: VulnStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.importer = importer
        self.config = config
        self.sources = tuple(sources)
        self.base_url = base_url
        self.seen = seen
        self.store = store or VulnStore()
        self.transport = transport

    def urls(self) -> list[str]:
        """The configured sources, or the default one per ecosystem seen."""
        if self.sources:
            return list(self.sources)
        return default_sources(self.base_url, ecosystems_of(self.seen()))

    def run(
        self,
        urls: Sequence[str] | None = None,
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> UpdateResult:
        """Update every source (`urls`, by default `self.urls()`), one after the other; one
        that fails does not stop the others. `should_stop`: checked between sources."""
        say = progress or (lambda line: log.info("%s", line))
        wanted = list(urls) if urls is not None else self.urls()
        outcomes: list[SourceOutcome] = []
        self.config.downloads.mkdir(parents=True, exist_ok=True)
        with self._client() as client:
            for url in wanted:
                if should_stop is not None and should_stop():
                    return UpdateResult(tuple(outcomes), stopped=True)
                outcome = self.update_source(client, url, say)
                say(outcome.line())
                outcomes.append(outcome)
        return UpdateResult(tuple(outcomes))

    def _client(self) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(self.config.timeout),
            follow_redirects=True,
            transport=self.transport,
            headers={"User-Agent": self.config.user_agent, "Accept-Encoding": "identity"},
        )

    def update_source(self, client: httpx.Client, url: str, say: Progress) -> SourceOutcome:
        name = source_name_of(url)
        try:
            with read_tx(self.engine) as conn:
                origin = self.store.origin(conn, name)
            with _locked(self.config.downloads / f"{_stem(name, url)}.lock", name):
                fetched = self.download(client, url, name, origin, say)
        except DownloadFailed as e:
            self._record_failure(name, url, e.message)
            return SourceOutcome(url, name, "failed", error=e.message, transient=e.transient)
        except Exception as e:  # the disk (full?), the database: this source only
            log.exception("downloading %s from %s", name, url)
            error = f"downloading {url}: {type(e).__name__}: {e}"
            self._record_failure(name, url, error)
            return SourceOutcome(url, name, "failed", error=error, transient=True)
        if fetched is None:
            return SourceOutcome(url, name, "not-modified")
        try:
            report = self.importer.import_bundle(fetched.path, source=name)
            with write_tx(self.engine) as conn:
                self.store.record_origin(conn, name, url, fetched.etag, fetched.last_modified)
        except DomainError as e:  # the importer recorded it on the source
            return SourceOutcome(url, name, "failed", error=e.message)
        except Exception as e:  # the database: worth another try
            log.exception("importing %s from %s", name, url)
            return SourceOutcome(
                url, name, "failed", error=f"{type(e).__name__}: {e}", transient=True
            )
        finally:
            fetched.path.unlink(missing_ok=True)
        return SourceOutcome(
            url,
            name,
            "imported",
            report=report,
            downloaded_bytes=fetched.size,
            resumed_from=fetched.resumed_from,
        )

    def _record_failure(self, name: str, url: str, error: str) -> None:
        try:
            with write_tx(self.engine) as conn:
                self.store.record_failure(conn, name, url, utc_now(), error)
        except Exception:
            log.exception("recording the failed download of %s", name)

    # --- the download ---------------------------------------------------------------------
    def download(
        self, client: httpx.Client, url: str, name: str, origin: Origin | None, say: Progress
    ) -> Downloaded | None:
        """The bundle at `url` in a file, or None when it did not change since `origin`."""
        stem = _stem(name, url)
        folder = self.config.downloads
        part, meta = folder / f"{stem}.part", folder / f"{stem}.part.json"
        final = folder / f"{stem}.bundle"
        headers: dict[str, str] = {}
        if origin is not None and origin.url == url:
            if origin.etag:
                headers["If-None-Match"] = origin.etag
            if origin.last_modified:
                headers["If-Modified-Since"] = origin.last_modified
        for _ in range(2):  # a second time only after a 416 on a resume
            offset, validator = _partial(part, meta, url)
            asked = dict(headers)
            if offset:
                asked["Range"] = f"bytes={offset}-"
                asked["If-Range"] = validator or ""
                say(f"{name}: GET {url} (resuming at byte {offset})")
            else:
                say(f"{name}: GET {url}")
            try:
                with client.stream("GET", url, headers=asked) as response:
                    if response.status_code == 416 and offset:
                        _discard(part, meta)
                        continue
                    got = self._receive(response, url, name, part, meta, offset, say)
            except httpx.HTTPError as e:
                kept = part.exists() and meta.exists()
                if not kept:
                    _discard(part, meta)
                size = part.stat().st_size if kept else 0
                raise DownloadFailed(
                    f"GET {url}: {type(e).__name__}: {str(e) or 'no detail'}"
                    + (f" (cut off after {size} bytes: the next update resumes)" if kept else ""),
                    transient=True,
                ) from None
            except httpx.InvalidURL as e:
                raise DownloadFailed(f"{url}: not a URL to fetch: {e}", transient=False) from None
            if got is None:
                return None
            part.replace(final)
            meta.unlink(missing_ok=True)
            return Downloaded(final, got.etag, got.last_modified, got.size, got.resumed_from)
        raise DownloadFailed(f"GET {url}: the server refused the range twice", transient=True)

    def _receive(
        self,
        response: httpx.Response,
        url: str,
        name: str,
        part: Path,
        meta: Path,
        offset: int,
        say: Progress,
    ) -> Downloaded | None:
        status = response.status_code
        if status == 304:
            _discard(part, meta)  # a partial of another version than the imported one
            return None
        if status == 206 and offset:
            start, total = _content_range(response)
            if start != offset:
                _discard(part, meta)
                raise DownloadFailed(
                    f"GET {url}: a 206 from byte {start}, not {offset}", transient=True
                )
            resumed_from = offset
        elif status == 200:
            resumed_from = 0
            declared = response.headers.get("content-length")
            total = int(declared) if declared and declared.isdigit() else None
        else:
            _discard(part, meta)
            raise DownloadFailed(
                f"GET {url}: HTTP {status} {response.reason_phrase}".rstrip(),
                transient=status >= 500 or status in (408, 429),
            )
        limit = self.config.max_bytes
        if total is not None and total > limit:
            _discard(part, meta)
            raise DownloadFailed(
                f"GET {url}: {total} bytes, over the limit of {limit} (max_bundle_bytes)",
                transient=False,
            )
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if resumed_from == 0:
            validator = etag if etag and not etag.startswith("W/") else last_modified
            part.unlink(missing_ok=True)
            if validator:  # without one, a cut-off download cannot resume
                meta.write_text(json.dumps({"url": url, "validator": validator}))
            else:
                meta.unlink(missing_ok=True)
        size = resumed_from
        shown = resumed_from
        with part.open("ab" if resumed_from else "wb") as f:
            for chunk in response.iter_raw():  # as it comes: a cut keeps all it got
                size += len(chunk)
                if size > limit:
                    f.close()
                    _discard(part, meta)
                    raise DownloadFailed(
                        f"GET {url}: over the limit of {limit} bytes (max_bundle_bytes)",
                        transient=False,
                    )
                f.write(chunk)
                if size - shown >= PROGRESS_EVERY:
                    shown = size
                    say(f"{name}: {size >> 20} MiB" + (f" of {total >> 20}" if total else ""))
        return Downloaded(part, etag, last_modified, size, resumed_from)


def _stem(name: str, url: str) -> str:
    """A file name of its own per source and URL."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', name)[:80]}-{digest}"


def _partial(part: Path, meta: Path, url: str) -> tuple[int, str | None]:
    """How much of `url` an earlier run left, and the validator to resume it with; (0, None)
    when nothing can be resumed (what is left is removed)."""
    try:
        saved = json.loads(meta.read_text())
        size = part.stat().st_size
    except (OSError, ValueError):
        _discard(part, meta)
        return 0, None
    validator = saved.get("validator") if isinstance(saved, dict) else None
    if saved.get("url") != url or not isinstance(validator, str) or not validator or size == 0:
        _discard(part, meta)
        return 0, None
    return size, validator


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _content_range(response: httpx.Response) -> tuple[int, int | None]:
    found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if found is None:
        raise DownloadFailed(
            f"GET {response.url}: a 206 without a readable Content-Range", transient=True
        )
    total = found.group(3)
    return int(found.group(1)), int(total) if total != "*" else None


@contextmanager
def _locked(path: Path, name: str) -> Iterator[None]:
    """The source's download lock on this host (another run holding it: `DownloadFailed`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadFailed(
                f"{name}: another update is downloading it on this host", transient=True
            ) from None
        yield
    finally:
        os.close(fd)
