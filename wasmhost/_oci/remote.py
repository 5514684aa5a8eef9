"""Talking to an OCI distribution registry over HTTP (requests).

The distribution API as registries speak it: Basic and Bearer challenges
(the token exchange of the Docker token protocol), a bounded retry policy,
redirects followed without carrying credentials to other hosts, streamed
uploads and downloads with their sizes and sha256 verified, manifests pushed
as exact bytes, every body read up to a limit, and every failure mapped to a
:class:`~wasmhost.RegistryError` that says what to do. Credentials never
appear in a message or a log line.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import math
import re
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.cookiejar import DefaultCookiePolicy
from typing import IO, TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.poolmanager

from .._errors import (
    AuthenticationError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    RegistryUnreachable,
    WasmhostError,
)
from .credentials import Credentials, lookup
from .formats import ACCEPT, MAX_MANIFEST, Progress, copy_checked, json_object, sha256_digest
from .reference import Reference

log = logging.getLogger("wasmhost.registry")

CHUNK = 1 << 20
CONNECT_TIMEOUT = 3.0
MAX_ERROR_BODY = 64 << 10
# A token service's answer is a few KiB of JSON (a token, its lifetime, a refresh token).
MAX_TOKEN_ANSWER = 1 << 20
RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# A blob's upload or download may take one second more per MIN_RATE bytes moved than
# the deadline of a request: 300 MiB on a link of 512 kbit/s still arrives, and a
# registry that sends a byte a second is given up at the deadline, whatever size the
# manifest claims (the time used to grow with the claim: 4.6 h for 1 GiB).
MIN_RATE = 64 << 10
# A blob is read in pieces this big, so that its bytes are counted as they arrive
# (within a second at MIN_RATE).
RATE_CHUNK = 64 << 10


class Transport(NamedTuple):
    """How to reach registries: ``plain_http`` (no TLS), ``insecure`` (TLS, unverified),
    ``ca_file`` (a CA bundle to verify with), ``timeout`` (seconds a read may wait; a
    connection gets CONNECT_TIMEOUT), ``attempts`` (for refused connections and HTTP
    429/502/503/504), ``sleep`` (how to wait between attempts: tests count the waits
    instead of waiting), ``deadline`` (seconds a request may take in all, its answer
    read whole; a blob gets one more per MIN_RATE bytes as they move)."""

    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    timeout: float = 10.0
    attempts: int = 3
    sleep: Callable[[float], object] = time.sleep
    deadline: float = 300.0


class _Deadline:
    """The time one request may take, from sending it to its answer read whole.

    A socket timeout bounds each wait for bytes only: a registry (or token
    service) sending a byte every few seconds kept a request going forever.
    When the deadline passes, the connection the request went out on is shut
    down, which ends the read or write in progress; ``expired`` then says why.
    A blob's transfer counts the bytes it ``moved``: each MIN_RATE of them earns
    it one second more, so it goes on past ``seconds`` while it keeps that rate.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.moved = 0
        self.expired = False
        self.connection: _Watched | None = None
        self.sock: socket.socket | None = None  # once its connection is closed
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._cancelled = False
        self._arm(seconds)

    def _arm(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._check)
        self._timer.daemon = True
        self._timer.start()

    def _check(self) -> None:
        left = self.seconds + self.moved / MIN_RATE - (time.monotonic() - self._started)
        if left > 0:
            with self._lock:
                if not self._cancelled:
                    self._arm(left)
            return
        self._expire()

    def _expire(self) -> None:
        with _WATCHING:
            self.expired = True
            connection = self.connection
            if connection is not None and connection.deadline is self:
                sock = connection.sock
            else:  # not sent yet (connecting has its own timeout), done, or closed
                sock = self.sock
        if sock is not None:
            with suppress(OSError):
                # The plain socket's shutdown, also under TLS: it interrupts the reader.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            self._timer.cancel()


# The deadline of the request the current thread is sending, for the connection that
# sends it to take up (see _Watched); and the lock that hands connections over.
_sending = threading.local()
_WATCHING = threading.Lock()

if TYPE_CHECKING:
    _Connection = urllib3.connection.HTTPConnection
else:
    _Connection = object


class _Watched(_Connection):
    """A connection that the deadline of the request it sends can shut down."""

    deadline: _Deadline | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._watch(getattr(_sending, "deadline", None))
        return super().request(*args, **kwargs)

    def close(self) -> None:
        # http.client closes a connection it will not keep (``Connection: close``, HTTP/1.0)
        # as soon as the answer's headers are in: the answer is still read from its
        # socket, which the deadline is handed to shut down (it was cancelled here, and a
        # registry that answered so could trickle the body forever).
        with _WATCHING:
            deadline, self.deadline = self.deadline, None
            if deadline is not None:
                deadline.sock = self.sock
        super().close()

    def _watch(self, deadline: _Deadline | None) -> None:
        with _WATCHING:
            previous, self.deadline = self.deadline, deadline
            if deadline is not None:
                deadline.connection = self
        if previous is not None and previous is not deadline:
            previous.cancel()  # its request is over: this connection went on to another


class _WatchedHTTP(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
# Which deadline each response's request has, until its answer is read.
_DEADLINES: weakref.WeakKeyDictionary[requests.Response, _Deadline] = weakref.WeakKeyDictionary()


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Gives every request of the session a timeout, and connections that a deadline
    can shut down (through a proxy too, except SOCKS)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (CONNECT_TIMEOUT, self._timeout)
        return super().send(request, *args, **kwargs)


class _HttpSession(requests.Session):
    """requests' Session without its ``.netrc`` credentials, which it would add to any
    request that has none, a redirect target's and a token service's included, and
    which would replace the Authorization header set here. Proxies from the
    environment still apply."""

    def __init__(self) -> None:
        super().__init__()
        self.auth = _keep_authorization  # a session auth: requests then looks up no netrc

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        # Strip what another host must not get (as requests does); never add.
        headers = prepared_request.headers
        if "Authorization" in headers and self.should_strip_auth(
            response.request.url, prepared_request.url
        ):
            del headers["Authorization"]


def _keep_authorization(request: Any) -> Any:
    return request


class Session:
    """One registry host: its connection pool, credentials and tokens."""

    def __init__(
        self, reference: Reference, transport: Transport, credentials: Credentials | None
    ) -> None:
        self.reference = reference
        self.transport = transport
        verify: bool | str = not transport.insecure
        if transport.ca_file and not transport.insecure:
            verify = transport.ca_file
        self._http = _HttpSession()
        # Registries that set cookies take them for a browser's: none are kept.
        self._http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = _TimeoutAdapter(transport.timeout)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)
        self._verify = verify
        if transport.insecure:
            log.info("TLS certificates of %s are not verified (insecure)", reference.registry)
        self._credentials = lookup(reference.registry.lower(), credentials)
        self._authorization: str | None = None
        self.base = f"{'http' if transport.plain_http else 'https'}://{reference.api_host}/v2"
        self._origin = _origin(self.base)

    # -- requests ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | bytes | None = None,
        ok: tuple[int, ...] = (200,),
        url: str | None = None,
    ) -> requests.Response:
        """Send a request, authenticating and retrying as needed; map failures to errors.

        ``body`` is bytes, or a callable returning a fresh body (a file
        object) for each attempt. ``what`` names the object for messages.
        Redirects are followed here, not by requests, so that credentials
        go only to the registry's own origin: a host a Location header names
        gets no Authorization header, and its 401 is an error. Each exchange
        has the transport's deadline; a blob's, one second more per MIN_RATE
        bytes as they move.
        """
        start = url or f"{self.base}{path}"
        attempt = 0
        authenticated = False
        while True:
            attempt += 1
            try:
                response = self._follow(method, start, what, headers, body)
            except (requests.ConnectionError, requests.Timeout) as exc:
                # A registry that accepted the connection and then said nothing is not
                # asked again: each attempt would wait the whole read timeout.
                silent = isinstance(exc, requests.ReadTimeout)
                if attempt < self.transport.attempts and not silent:
                    delay = 0.25 * 2 ** (attempt - 1)
                    log.info(
                        "retrying %s %s in %.2f s: %s", method, what, delay, type(exc).__name__
                    )
                    self.transport.sleep(delay)
                    continue
                kind = (
                    "timed out" if isinstance(exc, requests.Timeout) else "refused or unreachable"
                )
                failed = getattr(exc.request, "url", None) or start
                if _origin(failed) != self._origin:
                    raise RegistryUnreachable(
                        f"{urlsplit(failed).netloc}, where registry {self.reference.registry} "
                        f"redirected {what}, is {kind} (after {attempt} attempts); "
                        "try again later.",
                        **self._facts(),
                    ) from None
                plain = self.transport.plain_http
                raise RegistryUnreachable(
                    f"registry {self.reference.registry} is {kind} (after {attempt} attempts)",
                    advice="check the address and that it is running"
                    + ("" if plain else ", or use plain_http for a registry without TLS"),
                    fix="" if plain else "plain-http",
                    **self._facts(),
                ) from None
            status = response.status_code
            if status == 401 and not authenticated and _origin(response.url) == self._origin:
                authenticated = True
                if self._authenticate(response):
                    response.close()
                    attempt -= 1
                    continue
            if status in RETRY_STATUSES and attempt < self.transport.attempts:
                delay = _retry_after(response, 0.25 * 2 ** (attempt - 1))
                log.info("retrying %s %s in %.2f s: HTTP %d", method, what, delay, status)
                response.close()
                self.transport.sleep(delay)
                continue
            if status in ok:
                return response
            raise self._error(response, what)

    def _follow(
        self,
        method: str,
        target: str,
        what: str,
        headers: dict[str, str] | None,
        body: Callable[[], Any] | bytes | None,
        authorization: tuple[tuple[str, str], str | None] | None = None,
    ) -> requests.Response:
        """Send one request and follow its redirects (at most MAX_REDIRECTS).

        ``authorization`` is the origin an Authorization header is for, and the
        header: by default the registry's own and the one it accepted.
        """
        home_origin, credential = authorization or (self._origin, self._authorization)
        sent = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            home = _origin(target) == home_origin
            sent.pop("Authorization", None)
            if credential and home:
                sent["Authorization"] = credential
            response = self._send(method, target, sent, body, what)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECTS or not location:
                return response
            response.close()
            following = urljoin(target, location)
            scheme = urlsplit(following).scheme
            if scheme not in ("http", "https") or (
                scheme == "http" and not self.transport.plain_http
            ):
                raise RegistryError(
                    f"registry {self.reference.registry} redirected {what} to a URL that is "
                    "not HTTPS; refusing to follow it.",
                    **self._facts(),
                )
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                sent = {k: v for k, v in sent.items() if not k.lower().startswith("content-")}
            log.debug("%s redirected to %s", what, urlsplit(following).netloc)
            target = following
        raise RegistryError(
            f"registry {self.reference.registry} redirected {what} more than "
            f"{MAX_REDIRECTS} times; refusing to follow further.",
            **self._facts(),
        )

    def _send(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Callable[[], Any] | bytes | None,
        what: str,
    ) -> requests.Response:
        data = body() if callable(body) else body
        deadline = _Deadline(self.transport.deadline)
        if isinstance(data, _Counted):
            data.deadline = deadline  # an upload's bytes count as http.client reads them
        _sending.deadline = deadline
        try:
            with self._quiet_insecure():
                # Always streamed: no body is read whole unless it is known small.
                response: requests.Response = self._http.request(
                    method,
                    target,
                    headers=headers,
                    data=data,
                    stream=True,
                    verify=self._verify,
                    allow_redirects=False,
                )
        except requests.exceptions.SSLError as exc:
            log.debug("%s %s: TLS failed", method, _without_query(target))
            reason = str(exc)
            where = urlsplit(target).netloc
            if "WRONG_VERSION_NUMBER" in reason or "record layer failure" in reason:
                # OpenSSL's words for an answer in plain HTTP where TLS was expected.
                raise RegistryUnreachable(
                    f"TLS with {where} failed: it answers in plain HTTP",
                    advice="use plain_http to talk to it without TLS",
                    fix="http",
                    **self._facts(),
                ) from None
            untrusted = "CERTIFICATE_VERIFY_FAILED" in reason
            raise RegistryUnreachable(
                f"TLS with {where} failed{' (certificate not trusted)' if untrusted else ''}",
                advice="give ca_file with its CA, set insecure to skip verification, or "
                "plain_http for a registry without TLS",
                fix="tls",
                **self._facts(),
            ) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema):
            raise RegistryError(
                f"{urlsplit(target).netloc} is not an address that can be reached",
                advice="check the reference",
                **self._facts(),
            ) from None
        except requests.RequestException:
            if deadline.expired:
                raise self._too_slow(what, deadline) from None
            raise
        finally:
            _sending.deadline = None
            if deadline.connection is None:
                deadline.cancel()  # no answer to wait for
            close = getattr(data, "close", None) if callable(body) else None
            if close is not None:
                close()
        log.debug("%s %s -> HTTP %d", method, _without_query(target), response.status_code)
        _DEADLINES[response] = deadline
        return response

    def _too_slow(self, what: str, deadline: _Deadline) -> RegistryUnreachable:
        slow = f", then moved under {MIN_RATE >> 10} KiB/s" if deadline.moved else ""
        return RegistryUnreachable(
            f"{what} took over {deadline.seconds:g} s to come from registry "
            f"{self.reference.registry} (or to go to it){slow}, and was given up; "
            "try again later.",
            **self._facts(),
        )

    def _finished(self, response: requests.Response, what: str) -> None:
        """Raise if the deadline of ``response`` passed (its answer may be cut short);
        else stop it."""
        deadline = _DEADLINES.pop(response, None)
        if deadline is None:
            return
        deadline.cancel()
        if deadline.expired:
            raise self._too_slow(what, deadline)

    def _facts(self, status: int | None = None) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "registry": self.reference.registry,
            "status": status,
        }

    @contextmanager
    def _quiet_insecure(self) -> Iterator[None]:
        """Silence urllib3's per-request warning when unverified TLS was asked for."""
        if not self.transport.insecure:
            yield
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            yield

    def _authenticate(self, response: requests.Response) -> bool:
        """Answer a 401 challenge; whether the request is worth sending again."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self._credentials is None:
                return False
            self._authorization = _basic(self._credentials)
            return True
        if scheme == "bearer":
            params = _challenge_params(challenge)
            realm = params.get("realm", "")
            parts = urlsplit(realm)
            if parts.scheme != "https" and not (
                parts.scheme == "http" and self.transport.plain_http and parts.netloc
            ):
                log.info("not asking the token service %r: not an HTTPS URL", parts.netloc)
                return False
            query = urlencode([(key, params[key]) for key in ("service", "scope") if key in params])
            if query:
                realm += ("&" if parts.query else "?") + query
            token = self._token(realm)
            if token is not None:
                self._authorization = f"Bearer {token}"
                return True
        return False

    def _token(self, url: str) -> str | None:
        """A token from the token service at ``url`` (the Docker token protocol): asked
        with the credentials, if any, else anonymously; None when it refuses."""
        service = urlsplit(url).netloc
        what = f"a token from {service}"
        authorization = _basic(self._credentials) if self._credentials else None
        try:
            response = self._follow(
                "GET",
                url,
                what,
                {"Accept": "application/json"},
                None,
                authorization=(_origin(url), authorization),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "refused or unreachable"
            raise RegistryUnreachable(
                f"the token service {service} of registry {self.reference.registry} is {kind}; "
                "try again later.",
                **self._facts(),
            ) from None
        try:
            if response.status_code != 200:
                log.info("the token service %s answered HTTP %d", service, response.status_code)
                return None
            data = self._read_body(response, MAX_TOKEN_ANSWER, f"the answer of {service}")
        finally:
            response.close()
        if data is None:
            raise RegistryError(
                f"the token service {service} of registry {self.reference.registry} answered "
                f"more than {MAX_TOKEN_ANSWER >> 20} MiB; refusing it.",
                **self._facts(),
            )
        refused = functools.partial(AuthenticationError, **self._facts())
        answer = json_object(data, f"the answer of the token service {service}", refused)
        # The Docker token protocol names it token; OAuth 2, access_token.
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise AuthenticationError(
                f"the token service {service} of registry {self.reference.registry} answered "
                "without a token.",
                **self._facts(),
            )
        return token

    def _read_body(self, response: requests.Response, limit: int, what: str) -> bytes | None:
        """The whole body of ``response`` if it is at most ``limit`` bytes, else None."""
        try:
            data = _read_capped(response, limit)
        except requests.RequestException:
            self._finished(response, what)
            raise RegistryUnreachable(f"{what} broke off; try again.", **self._facts()) from None
        self._finished(response, what)
        return data

    def _error(self, response: requests.Response, what: str) -> RegistryError:
        status = response.status_code
        registry = self.reference.registry
        facts = self._facts(status)
        try:
            body = _read_capped(response, MAX_ERROR_BODY) or b""
        except requests.RequestException:
            body = b""
        self._finished(response, what)
        detail = _registry_message(body)
        elsewhere = urlsplit(response.url).netloc if _origin(response.url) != self._origin else ""
        response.close()
        if status == 400 and self.transport.plain_http and b"to an HTTPS server" in body:
            # Go's answer (the distribution registry's) to plain HTTP on a TLS port.
            return RegistryError(
                f"registry {registry} speaks HTTPS (TLS) where plain HTTP was asked; "
                "connect with TLS instead (without plain HTTP).",
                **facts,
            )
        if status == 401 and elsewhere:
            return AuthenticationError(
                f"{elsewhere}, where registry {registry} redirected {what}, asks for "
                "credentials; a registry's credentials are never sent to another host.",
                **facts,
            )
        if status == 401:
            if self._credentials is None:
                return AuthenticationError(
                    f"registry {registry} requires credentials for {what}",
                    advice=f"give RegistryClient credentials for {registry}, or store them "
                    "with RegistryClient.login",
                    fix="credentials",
                    **facts,
                )
            return AuthenticationError(
                f"registry {registry} refused the credentials for {what}",
                advice="check them; RegistryClient.login stores ones that work",
                fix="login",
                **facts,
            )
        where = f" (at {elsewhere}, where {registry} redirected it)" if elsewhere else ""
        if status == 403:
            return AuthenticationError(
                f"registry {registry} denied access to {what}{where}; check that this account "
                "may use that repository.",
                **facts,
            )
        if status == 404:
            return NotFoundError(f"{what} was not found on {registry}{where}{detail}.", **facts)
        if status >= 500:
            return RegistryError(
                f"registry {registry} failed with HTTP {status} on {what}{where}{detail}; "
                "try again later.",
                **facts,
            )
        return RegistryError(
            f"registry {registry} answered HTTP {status} to {what}{where}{detail}.", **facts
        )

    # -- the distribution API ------------------------------------------------

    def get_manifest(self, target: str) -> tuple[bytes, str, str]:
        """The manifest bytes, media type and digest of ``target`` (a tag or digest).

        The digest is computed from the bytes; when asked for by digest, the
        bytes must match it.
        """
        repo = self.reference.repository
        separator = "@" if target.startswith("sha256:") else ":"
        what = f"{self.reference.registry}/{repo}{separator}{target}"
        response = self.request(
            "GET", f"/{repo}/manifests/{target}", what=what, headers={"Accept": ACCEPT}
        )
        try:
            data = self._read_body(response, MAX_MANIFEST, f"the manifest of {what}")
        finally:
            response.close()
        if data is None:
            raise IntegrityError(
                f"the manifest of {what} is over {MAX_MANIFEST >> 20} MiB; refusing it.",
                **self._facts(),
            )
        digest = sha256_digest(data)
        if target.startswith("sha256:") and digest != target:
            raise IntegrityError(
                f"the manifest {target} from {self.reference.registry} has digest {digest}; "
                "refusing it.",
                **self._facts(),
            )
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise IntegrityError(
                f"the registry says {what} is {claimed}, but its bytes are {digest}; refusing it.",
                **self._facts(),
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return data, media_type, digest

    def put_manifest(
        self,
        tag_or_digest: str,
        data: bytes,
        media_type: str,
        platform: dict[str, str] | None = None,
    ) -> str:
        """PUT a manifest. ``platform`` is for an index entry, which a registry push of
        one manifest does not write: it is accepted so that an OCI layout and a registry
        take the same calls."""
        repo = self.reference.repository
        response = self.request(
            "PUT",
            f"/{repo}/manifests/{tag_or_digest}",
            what=f"the manifest of {self.reference}",
            headers={"Content-Type": media_type},
            body=data,
            ok=(200, 201),
        )
        response.close()
        return sha256_digest(data)

    def blob_exists(self, digest: str) -> bool:
        repo = self.reference.repository
        response = self.request(
            "HEAD", f"/{repo}/blobs/{digest}", what=f"blob {digest}", ok=(200, 404)
        )
        response.close()
        return response.status_code == 200

    def upload_blob(
        self,
        digest: str,
        size: int,
        content: Callable[[], IO[bytes]] | bytes,
        progress: Progress | None = None,
    ) -> None:
        """Upload one blob, streamed in one PUT, unless the registry has it already."""
        if self.blob_exists(digest):
            if progress:
                progress(size, size)
            return
        repo = self.reference.repository
        start = self.request(
            "POST",
            f"/{repo}/blobs/uploads/",
            what=f"an upload to {self.reference.registry}/{repo}",
            headers={"Content-Length": "0"},
            ok=(202,),
        )
        location = start.headers.get("Location", "")
        start.close()
        if not location:
            raise RegistryError(
                f"registry {self.reference.registry} started an upload without a Location.",
                **self._facts(),
            )
        location = urljoin(f"{self.base}/{repo}/blobs/uploads/", location)
        if urlsplit(location).scheme != urlsplit(self.base).scheme:
            raise RegistryError(
                f"registry {self.reference.registry} started an upload at a URL of another "
                "scheme; refusing to send the blob there.",
                **self._facts(),
            )
        location += ("&" if "?" in location else "?") + f"digest={digest}"

        def body() -> Any:
            if isinstance(content, bytes):
                return _Counted(io.BytesIO(content), size, progress)
            return _Counted(content(), size, progress)

        done = self.request(
            "PUT",
            "",
            url=location,
            what=f"blob {digest}",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
            ok=(201, 204),
        )
        done.close()

    @contextmanager
    def open_blob(self, digest: str) -> Iterator[requests.Response]:
        repo = self.reference.repository
        response = self.request("GET", f"/{repo}/blobs/{digest}", what=f"blob {digest}")
        try:
            yield response
        finally:
            response.close()

    def download_blob(
        self, digest: str, size: int, out: IO[bytes], progress: Progress | None = None
    ) -> None:
        """Stream blob ``digest`` into ``out``, checking its size and sha256 on the way."""
        with self.open_blob(digest) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > size:
                raise IntegrityError(
                    f"blob {digest} from {self.reference.registry} is {declared} bytes, not the "
                    f"{size} its manifest says; nothing was kept.",
                    **self._facts(),
                )
            try:
                chunks = _counted(response, response.iter_content(RATE_CHUNK))
                received, actual = copy_checked(chunks, size, out, progress)
            except requests.RequestException:
                self._finished(response, f"blob {digest}")
                raise RegistryUnreachable(
                    f"the download of {digest} from {self.reference.registry} broke off; "
                    "try again.",
                    **self._facts(),
                ) from None
            self._finished(response, f"blob {digest}")
        if received != size or actual != digest:
            got = f"{received} bytes" if received != size else f"digest {actual}"
            raise IntegrityError(
                f"blob {digest} from {self.reference.registry} does not match its digest "
                f"(expected {size} bytes, got {got}); nothing was kept.",
                **self._facts(),
            )

    def check(self) -> None:
        """Ask the registry's API root, authenticating: the check behind ``login``."""
        response = self.request("GET", "/", what=f"the API of {self.reference.registry}")
        response.close()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _counted(response: requests.Response, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` of the answer, each counted by the deadline of its request."""
    deadline = _DEADLINES.get(response)
    for chunk in chunks:
        if deadline is not None:
            deadline.moved += len(chunk)
        yield chunk


class _Counted:
    """A request body that reports progress as http.client reads it (and counts it
    for the deadline of its request, once one is given)."""

    def __init__(self, inner: Any, size: int, progress: Progress | None) -> None:
        self._inner = inner
        self._size = size
        self._done = 0
        self._progress = progress
        self.deadline: _Deadline | None = None

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        if hasattr(self._inner, "close"):
            self._inner.close()

    def read(self, n: int = -1) -> bytes:
        # http.client asks for 8 KiB at a time; larger pieces mean fewer system calls.
        chunk: bytes = self._inner.read(max(n or 0, CHUNK))
        self._done += len(chunk)
        if self.deadline is not None:
            self.deadline.moved += len(chunk)
        if self._progress:
            self._progress(self._done, self._size)
        if not chunk and hasattr(self._inner, "close"):
            self._inner.close()
        return chunk


# A token goes into a header as it is: printable ASCII without spaces (base64, a JWT).
_TOKEN = re.compile(r"[!-~]+")
_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


def _challenge_params(challenge: str) -> dict[str, str]:
    """The parameters of a WWW-Authenticate challenge (``realm``, ``service``, ``scope``)."""
    params: dict[str, str] = {}
    for key, quoted, bare in _PARAM.findall(challenge.partition(" ")[2]):
        params.setdefault(key.lower(), re.sub(r"\\(.)", r"\1", quoted) if quoted else bare)
    return params


def _basic(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _origin(url: str) -> tuple[str, str]:
    """A URL's scheme and host[:port]: what credentials are scoped to."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _without_query(url: str) -> str:
    """A URL for a log line: a query may hold a signature or an upload's state."""
    return url.partition("?")[0]


def _retry_after(response: requests.Response, default: float) -> float:
    """The registry's Retry-After in seconds, kept between 0 and 5; ``default`` if absent."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return default
    return min(max(seconds, 0.0), 5.0) if math.isfinite(seconds) else default


def _read_capped(response: requests.Response, limit: int) -> bytes | None:
    """The whole body if it is at most ``limit`` bytes, else None."""
    data = bytearray()
    for chunk in response.iter_content(64 << 10):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def _registry_message(body: bytes) -> str:
    """The registry's own explanation (its JSON ``errors``), if short; never headers."""
    try:
        errors = json_object(body or b"{}", "an error").get("errors") or []
        messages = [
            str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")
        ]
    except (WasmhostError, TypeError):
        return ""
    text = "".join(c if c.isprintable() else " " for c in "; ".join(messages))[:200]
    return f" ({text})" if text else ""
