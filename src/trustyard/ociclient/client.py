"""RegistryClient: the one OCI distribution client every feature talking to another registry
uses (auth flows, TLS options, retries, bounded reads, resumable chunked uploads)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from trustyard.ociclient._parse import parse_challenge, parse_link_next, parse_range_end
from trustyard.ociclient.interfaces import (
    BlobSent,
    ClientLimits,
    Progress,
    RemoteAuthFailed,
    RemoteDenied,
    RemoteDescriptor,
    RemoteEndpoint,
    RemoteError,
    RemoteManifest,
    RemoteNotFound,
    RemoteProtocolError,
    RemoteRateLimited,
    RemoteRefused,
    RemoteTimeout,
    RemoteTLSError,
    RemoteUnreachable,
    UploadCheckpoints,
)

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.artifact.manifest.v1+json",
    )
)
_READ = 64 * 1024
_DEFAULT_LIMITS = ClientLimits()

_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _semaphore(key: str, size: int) -> threading.BoundedSemaphore:
    with _SEMAPHORES_LOCK:
        sem = _SEMAPHORES.get(key)
        if sem is None:
            sem = _SEMAPHORES[key] = threading.BoundedSemaphore(max(1, size))
        return sem


def _scope(repository: str | None, push: bool) -> str | None:
    if repository is None:
        return None
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


class RegistryClient:
    """Thread-safe client of one remote registry; use as a context manager or close()."""

    def __init__(
        self,
        endpoint: RemoteEndpoint,
        limits: ClientLimits = _DEFAULT_LIMITS,
        *,
        checkpoints: UploadCheckpoints | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._limits = limits
        self._checkpoints = checkpoints
        self._base = endpoint.url.rstrip("/")
        verify: ssl.SSLContext | bool
        if not endpoint.tls_verify:
            verify = False
        else:
            ctx = ssl.create_default_context()
            if endpoint.ca_certificate:
                ctx.load_verify_locations(cadata=endpoint.ca_certificate)
            verify = ctx
        self._http = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout, pool=None),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(4, endpoint.max_concurrency * 2)),
        )
        self._sem = _semaphore(endpoint.limit_key, endpoint.max_concurrency)
        self._lock = threading.Lock()
        self._tokens: dict[str | None, tuple[str, float]] = {}
        self._basic = False  # the remote asked for Basic

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- auth -----------------------------------------------------------------------------

    def _basic_header(self) -> str | None:
        if self._endpoint.username is None and self._endpoint.password is None:
            return None
        raw = f"{self._endpoint.username or ''}:{self._endpoint.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _auth_header(self, scope: str | None) -> str | None:
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is not None and cached[1] > time.monotonic():
                return "Bearer " + cached[0]
            if self._basic:
                return self._basic_header()
        return None

    def _fetch_token(self, header: str, scope: str | None) -> str | None:
        """Answers a 401 challenge: the header to try again with, or None (anonymous fail)."""
        challenge = parse_challenge(header)
        if challenge is None or challenge.scheme == "basic":
            basic = self._basic_header()
            if basic is None:
                return None
            with self._lock:
                self._basic = True
            return basic
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise RemoteProtocolError(
                f"the remote asked for an unknown authentication scheme ({challenge.scheme[:20]})"
            )
        realm = challenge.params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RemoteProtocolError("the remote's token service address is not an http(s) URL")
        query: list[tuple[str, str]] = []
        if "service" in challenge.params:
            query.append(("service", challenge.params["service"]))
        wanted = scope or challenge.params.get("scope")
        if wanted:
            query.append(("scope", wanted))
        headers = {}
        basic = self._basic_header()
        if basic is not None:
            headers["Authorization"] = basic
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        try:
            resp = self._http.get(url, headers=headers)
            body = self._read_bounded(resp, self._limits.max_json_bytes)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "the token service") from None
        if resp.status_code in (401, 403):
            raise RemoteAuthFailed(
                f"wrong credentials for remote (HTTP {resp.status_code} from the token service)",
                status=resp.status_code,
            )
        if resp.status_code != 200:
            raise RemoteProtocolError(
                f"the token service answered HTTP {resp.status_code}", status=resp.status_code
            )
        data = self._json(body, "the token service")
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RemoteProtocolError("the token service answered without a token")
        expires = data.get("expires_in", 60)
        life = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0
        with self._lock:
            self._tokens[scope] = (token, time.monotonic() + max(1.0, life - 10.0))
        return "Bearer " + token

    # --- transport ------------------------------------------------------------------------

    def _transport_error(self, exc: Exception, what: str = "the remote") -> RemoteError:
        if isinstance(exc, httpx.TimeoutException):
            return RemoteTimeout(f"{what} did not answer in time ({type(exc).__name__})")
        text = str(exc)
        if isinstance(exc, httpx.ConnectError) and (
            "CERTIFICATE" in text.upper() or "SSL" in text.upper() or "TLS" in text.upper()
        ):
            reason = "TLS certificate not trusted"
            for marker in (
                "self-signed certificate",
                "certificate has expired",
                "Hostname mismatch",
                "unable to get local issuer certificate",
                "wrong version number",
            ):
                if marker.lower() in text.lower():
                    reason += f": {marker}"
                    break
            return RemoteTLSError(reason)
        if isinstance(exc, httpx.ConnectError):
            return RemoteUnreachable(f"{what} could not be reached (connection failed)")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return RemoteUnreachable(f"{what} dropped the connection ({type(exc).__name__})")
        return RemoteUnreachable(f"{what} could not be reached ({type(exc).__name__})")

    def _read_bounded(self, resp: httpx.Response, limit: int) -> bytes:
        """Reads a streamed response body, refusing one over `limit` bytes."""
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in resp.iter_bytes():
                total += len(chunk)
                if total > limit:
                    raise RemoteProtocolError(
                        f"the remote answered a body over the {limit} bytes allowed"
                    )
                chunks.append(chunk)
        finally:
            resp.close()
        return b"".join(chunks)

    def _json(self, body: bytes, what: str = "the remote") -> Any:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RemoteProtocolError(f"{what} answered 200 with a body that is not JSON") from None

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self._base + path

    def _backoff(self, attempt: int) -> float:
        delay = min(self._limits.backoff_max, self._limits.backoff_base * (2**attempt))
        return float(delay * (0.5 + random.random() / 2))  # noqa: S311

    def _send(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        headers: dict[str, str] | None = None,
        content: bytes | Callable[[], bytes | Iterator[bytes]] | None = None,
        retry: bool = True,
        stream: bool = True,
        auth: bool = True,
    ) -> httpx.Response:
        """One request with auth, retries and the per-remote bound; the response is open
        (streamed): the caller reads or closes it."""
        attempts = self._limits.max_attempts if retry else 1
        reauthed = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            authz = self._auth_header(scope) if auth else None
            if authz is not None:
                hdrs["Authorization"] = authz
            body = content() if callable(content) else content
            try:
                with self._sem:
                    req = self._http.build_request(
                        method, self._url(path), headers=hdrs, content=body
                    )
                    resp = self._http.send(req, stream=stream)
            except httpx.HTTPError as exc:
                err = self._transport_error(exc)
                if isinstance(err, RemoteTLSError) or attempt + 1 >= attempts:
                    raise err from None
                attempt += 1
                time.sleep(self._backoff(attempt))
                continue
            if resp.status_code == 401 and auth and not reauthed:
                challenge = resp.headers.get("www-authenticate", "")
                resp.close()
                with self._lock:
                    self._tokens.pop(scope, None)
                if self._fetch_token(challenge, scope) is None:
                    raise RemoteAuthFailed("the remote requires credentials (HTTP 401)", status=401)
                reauthed = True
                continue
            if resp.status_code in (429, 503) or (resp.status_code >= 500 and retry):
                retry_after = _retry_after(resp.headers.get("retry-after"))
                status = resp.status_code
                resp.close()
                if retry_after is not None and retry_after > self._limits.max_retry_after:
                    raise RemoteRateLimited(
                        f"rate limited ({status}), Retry-After {retry_after:.0f} s is longer "
                        f"than the {self._limits.max_retry_after:.0f} s allowed",
                        retry_after=retry_after,
                    )
                if attempt + 1 >= attempts:
                    if status == 429:
                        raise RemoteRateLimited(
                            f"rate limited (429) after {attempts} attempts",
                            retry_after=retry_after,
                        )
                    raise RemoteUnreachable(
                        f"the remote answered HTTP {status} after {attempts} attempts",
                        status=status,
                    )
                attempt += 1
                time.sleep(retry_after if retry_after is not None else self._backoff(attempt))
                continue
            return resp

    def _fail(self, resp: httpx.Response, what: str) -> RemoteError:
        """The error for an unexpected answer (closes the response)."""
        status = resp.status_code
        detail = ""
        try:
            body = self._read_bounded(resp, 64 * 1024)
            data = json.loads(body)
            errs = data.get("errors") if isinstance(data, dict) else None
            if isinstance(errs, list) and errs and isinstance(errs[0], dict):
                code = str(errs[0].get("code", ""))[:60]
                msg = str(errs[0].get("message", ""))[:200]
                detail = f": {code} {msg}".rstrip()
        except (RemoteError, ValueError, UnicodeDecodeError, httpx.HTTPError):
            pass
        finally:
            resp.close()
        if status == 401:
            return RemoteAuthFailed(
                f"wrong credentials for remote (HTTP 401 on {what})", status=401
            )
        if status == 403:
            return RemoteDenied(
                f"not allowed to {what} on the remote (HTTP 403){detail}", status=403
            )
        if status == 404:
            return RemoteNotFound(f"{what}: not found on the remote{detail}", status=404)
        if 400 <= status < 500:
            return RemoteRefused(
                f"the remote refused to {what} (HTTP {status}){detail}", status=status
            )
        if status >= 500:
            return RemoteUnreachable(f"the remote failed to {what} (HTTP {status})", status=status)
        return RemoteProtocolError(f"unexpected answer HTTP {status} to {what}", status=status)

    # --- API ------------------------------------------------------------------------------

    def ping(self) -> str:
        resp = self._send("GET", "/v2/", scope=None)
        if resp.status_code == 200:
            resp.close()
            how = "anonymously" if self._basic_header() is None else "with the credentials"
            return f"remote registry at {self._base} reached {how}"
        raise self._fail(resp, "reach the registry API /v2/")

    def check_repository(self, repository: str, *, push: bool) -> None:
        scope = _scope(repository, push)
        resp = self._send("GET", f"/v2/{repository}/tags/list?n=1", scope=scope)
        if resp.status_code in (200, 404):
            resp.close()
            if push:
                # a token without push scope is refused at upload start; ask for one
                post = self._send(
                    "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, retry=False
                )
                if post.status_code == 202:
                    loc = post.headers.get("location")
                    post.close()
                    if loc:
                        d = self._send(
                            "DELETE", urljoin(self._base + "/", loc), scope=scope, retry=False
                        )
                        d.close()
                    return
                raise self._fail(post, f"push to {repository}")
            return
        raise self._fail(resp, f"read {repository}")

    def tags(self, repository: str, *, limit: int) -> list[str]:
        scope = _scope(repository, False)
        out: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n={min(max(limit, 1), 1000)}"
        while path is not None and len(out) < limit:
            resp = self._send("GET", path, scope=scope)
            if resp.status_code == 404:
                resp.close()
                return []
            if resp.status_code != 200:
                raise self._fail(resp, f"list the tags of {repository}")
            nxt = parse_link_next(resp.headers.get("link"))
            data = self._json(self._read_bounded(resp, self._limits.max_json_bytes))
            tags = data.get("tags") if isinstance(data, dict) else None
            if tags is None:
                tags = []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RemoteProtocolError("the remote's tag list is not a list of names")
            out.extend(tags)
            path = urljoin(self._base + "/", nxt) if nxt else None
            if path is not None and urlsplit(path).netloc != urlsplit(self._base).netloc:
                raise RemoteProtocolError("the remote's tag list links to another host")
        return out[:limit]

    def head_manifest(self, repository: str, reference: str) -> RemoteDescriptor | None:
        resp = self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=_scope(repository, False),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if resp.status_code == 404:
            resp.close()
            return None
        if resp.status_code != 200:
            raise self._fail(resp, f"read {repository}:{reference}")
        resp.close()
        digest = resp.headers.get("docker-content-digest")
        if not digest:
            # some registries omit the digest on HEAD: ask for the body
            man = self.get_manifest(repository, reference)
            return RemoteDescriptor(man.digest, man.media_type, len(man.body))
        return RemoteDescriptor(
            digest,
            resp.headers.get("content-type", "").split(";")[0].strip(),
            int(resp.headers.get("content-length", "0") or 0),
        )

    def get_manifest(self, repository: str, reference: str) -> RemoteManifest:
        resp = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=_scope(repository, False),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if resp.status_code != 200:
            raise self._fail(resp, f"read the manifest {repository}:{reference}")
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        claimed = resp.headers.get("docker-content-digest")
        body = self._read_bounded(resp, self._limits.max_manifest_bytes)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise RemoteProtocolError(f"the manifest {reference} answered has digest {digest}")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise RemoteProtocolError(
                f"the manifest's Docker-Content-Digest {claimed} does not match its bytes"
            )
        if not media_type or media_type == "application/json":
            try:
                mt = json.loads(body).get("mediaType")
            except (ValueError, AttributeError):
                mt = None
            if isinstance(mt, str):
                media_type = mt
        return RemoteManifest(digest, media_type, body)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        resp = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scope=_scope(repository, True),
            headers={"Content-Type": media_type},
            content=body,
        )
        if resp.status_code not in (200, 201, 202):
            raise self._fail(resp, f"store the manifest {repository}:{reference}")
        claimed = resp.headers.get("docker-content-digest")
        resp.close()
        if claimed and claimed != digest:
            raise RemoteProtocolError(
                f"the remote stored the manifest as {claimed}, not {digest} (not digest-exact)"
            )
        return digest

    def delete_manifest(self, repository: str, reference: str) -> bool:
        resp = self._send(
            "DELETE", f"/v2/{repository}/manifests/{reference}", scope=_scope(repository, True)
        )
        if resp.status_code == 404:
            resp.close()
            return False
        if resp.status_code in (200, 202, 204):
            resp.close()
            return True
        raise self._fail(resp, f"delete {repository}:{reference}")

    def has_blob(self, repository: str, digest: str) -> int | None:
        resp = self._send(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=_scope(repository, False)
        )
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code in (307, 302):
            return _size(resp.headers.get("content-length"))
        if resp.status_code == 200:
            # A registry names the blob it found; a server answering 200 to anything (an HTML
            # page) must not make every blob look present, or a push would skip them all.
            named = resp.headers.get("docker-content-digest")
            if named != digest:
                raise RemoteProtocolError(
                    f"the remote answered 200 for the blob {digest} without naming it "
                    "(Docker-Content-Digest missing or different): is it a registry?"
                )
            return _size(resp.headers.get("content-length"))
        raise self._fail(resp, f"check the blob {digest}")

    # --- blob upload ----------------------------------------------------------------------

    def push_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        open_stream: Callable[[int], AbstractContextManager[Iterator[bytes]]],
        *,
        mount_from: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> BlobSent:
        scope = _scope(repository, True)
        if self._has_blob_push(repository, digest, scope):
            return BlobSent(digest, "present", 0)
        for source in mount_from:
            if source == repository:
                continue
            mscope = f"{scope} repository:{source}:pull"
            resp = self._send(
                "POST",
                f"/v2/{repository}/blobs/uploads/?" + urlencode({"mount": digest, "from": source}),
                scope=mscope,
                retry=False,
            )
            if resp.status_code == 201:
                resp.close()
                return BlobSent(digest, "mounted", 0)
            loc = resp.headers.get("location") if resp.status_code == 202 else None
            resp.close()
            if loc:  # an upload was opened instead: not needed
                self._send("DELETE", self._abs(loc), scope=mscope, retry=False).close()
        if progress is not None:
            progress.started(digest, size)
        return self._upload(repository, digest, size, open_stream, scope, progress)

    def _has_blob_push(self, repository: str, digest: str, scope: str | None) -> bool:
        resp = self._send("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope)
        resp.close()
        if resp.status_code in (200, 302, 307):
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, f"check the blob {digest}")

    def _abs(self, location: str) -> str:
        return urljoin(self._base + "/", location)

    def _resume_offset(self, location: str, scope: str | None) -> int | None:
        try:
            resp = self._send("GET", location, scope=scope, retry=False)
        except RemoteError:
            return None
        resp.close()
        if resp.status_code not in {200, 204}:
            return None
        end = parse_range_end(resp.headers.get("range"))
        return end if end is not None else None

    def _upload(
        self,
        repository: str,
        digest: str,
        size: int,
        open_stream: Callable[[int], AbstractContextManager[Iterator[bytes]]],
        scope: str | None,
        progress: Progress | None,
    ) -> BlobSent:
        key = self._endpoint.limit_key
        cp = self._checkpoints
        location: str | None = None
        offset = 0
        if cp is not None:
            saved = cp.load(key, repository, digest)
            if saved:
                got = self._resume_offset(saved, scope)
                if got is not None and got <= size:
                    location, offset = saved, got
                else:
                    cp.drop(key, repository, digest)
        if location is None:
            resp = self._send("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
            if resp.status_code != 202 or not resp.headers.get("location"):
                raise self._fail(resp, f"start an upload to {repository}")
            location = self._abs(resp.headers["location"])
            resp.close()
            if cp is not None:
                cp.save(key, repository, digest, location)
        sent = 0
        chunk = max(1, self._limits.chunk_bytes)
        with open_stream(offset) as stream:
            buffer = _Rechunk(stream, chunk)
            while offset < size:
                data = buffer.take()
                if not data:
                    raise RemoteProtocolError(f"the local blob {digest} ended before its size")
                end = offset + len(data) - 1
                resp = self._send(
                    "PATCH",
                    location,
                    scope=scope,
                    retry=False,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{end}",
                        "Content-Length": str(len(data)),
                    },
                    content=data,
                )
                if resp.status_code != 202:
                    raise self._fail(resp, f"upload {digest} to {repository}")
                location = self._abs(resp.headers.get("location") or location)
                resp.close()
                offset += len(data)
                sent += len(data)
                if cp is not None:
                    cp.save(key, repository, digest, location)
                if progress is not None:
                    progress.advanced(digest, offset)
        sep = "&" if "?" in location else "?"
        resp = self._send(
            "PUT",
            location + sep + urlencode({"digest": digest}),
            scope=scope,
            retry=False,
            headers={"Content-Length": "0"},
            content=b"",
        )
        if resp.status_code not in (201, 204):
            err = self._fail(resp, f"finish the upload of {digest} to {repository}")
            if cp is not None and resp.status_code == 400:
                cp.drop(key, repository, digest)
            raise err
        resp.close()
        if cp is not None:
            cp.drop(key, repository, digest)
        return BlobSent(digest, "uploaded", sent)

    # --- blob download --------------------------------------------------------------------

    def pull_blob(
        self, repository: str, digest: str, *, offset: int = 0
    ) -> AbstractContextManager[Iterator[bytes]]:
        return self._pull(repository, digest, offset)

    @contextmanager
    def _pull(self, repository: str, digest: str, offset: int) -> Iterator[Iterator[bytes]]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._send(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=_scope(repository, False),
            headers=headers,
        )
        hops = 0
        while resp.status_code in (301, 302, 303, 307, 308) and hops < 5:
            target = resp.headers.get("location")
            resp.close()
            if not target:
                raise RemoteProtocolError("the remote redirected a blob without a Location")
            hops += 1
            url = self._abs(target)
            same = urlsplit(url).netloc == urlsplit(self._base).netloc
            try:
                with self._sem:
                    resp = (
                        self._http.send(
                            self._http.build_request("GET", url, headers=headers), stream=True
                        )
                        if not same
                        else self._send(
                            "GET", url, scope=_scope(repository, False), headers=headers
                        )
                    )
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, "the remote's blob storage") from None
        if offset and resp.status_code != 206:
            raise (
                self._fail(resp, f"resume the download of {digest}")
                if resp.status_code != 200
                else RemoteProtocolError("the remote ignored the Range of a resumed download")
            )
        if not offset and resp.status_code != 200:
            raise self._fail(resp, f"download the blob {digest}")
        try:
            yield self._iter(resp)
        finally:
            resp.close()

    def _iter(self, resp: httpx.Response) -> Iterator[bytes]:
        try:
            yield from resp.iter_bytes(_READ)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    # --- referrers ------------------------------------------------------------------------

    def referrers(self, repository: str, digest: str) -> list[RemoteDescriptor]:
        resp = self._send(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            scope=_scope(repository, False),
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
        if resp.status_code == 200:
            body = self._read_bounded(resp, self._limits.max_json_bytes)
            return _descriptors(self._json(body))
        if resp.status_code not in (404, 405, 400):
            raise self._fail(resp, f"list the referrers of {digest}")
        resp.close()
        algo, _, hexpart = digest.partition(":")
        try:
            man = self.get_manifest(repository, f"{algo}-{hexpart}")
        except RemoteNotFound:
            return []
        return _descriptors(self._json(man.body))


class _Rechunk:
    """Cuts a stream of byte pieces into pieces of `size` (the last may be shorter)."""

    def __init__(self, stream: Iterator[bytes], size: int) -> None:
        self._it = iter(stream)
        self._size = size
        self._buf = bytearray()
        self._done = False

    def take(self) -> bytes:
        while len(self._buf) < self._size and not self._done:
            try:
                self._buf.extend(next(self._it))
            except StopIteration:
                self._done = True
        out = bytes(self._buf[: self._size])
        del self._buf[: self._size]
        return out


def _descriptors(data: Any) -> list[RemoteDescriptor]:
    if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
        raise RemoteProtocolError("the remote's referrers answer is not an OCI index")
    out: list[RemoteDescriptor] = []
    for d in data.get("manifests", []):
        if not isinstance(d, dict):
            continue
        dg, mt, sz = d.get("digest"), d.get("mediaType"), d.get("size")
        if not isinstance(dg, str) or not isinstance(mt, str) or not isinstance(sz, int):
            continue
        at = d.get("artifactType")
        out.append(RemoteDescriptor(dg, mt, sz, at if isinstance(at, str) else None))
    return out


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def _size(value: str | None) -> int:
    """A Content-Length header as a size (0 when absent or not a number)."""
    try:
        return max(0, int(value or "0"))
    except ValueError:
        return 0
