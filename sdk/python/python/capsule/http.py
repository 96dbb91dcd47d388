"""`capsule.http` on the host: the same `fetch` a task calls in the sandbox, sent with urllib.

Task files import it at their top level; on the host (a pytest run of a task function) requests go
straight to the network with this process's own rights: `allowed_hosts` is only enforced inside
the sandbox, where the runner checks every request and redirect hop.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

__all__ = ["HostDeniedError", "Response", "fetch", "get", "post"]

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


class HostDeniedError(PermissionError):
    """Raised in the sandbox when a request goes to a host `allowed_hosts` does not allow."""


class Response:
    """An HTTP response: `status`, `url` (after redirects), `headers` ([(name, value)]), `body`."""

    def __init__(self, status: int, url: str, headers: List[Tuple[str, str]], body: bytes, redirected: bool) -> None:
        self.status = status
        self.url = url
        self.headers = headers
        self.body = body
        self.redirected = redirected

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header `name` (case-insensitive)."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def text(self, encoding: str = "utf-8") -> str:
        """The body as text."""
        return self.body.decode(encoding, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(url: str, *, method: str = "GET", headers: Headers = None, body: Union[str, bytes, None] = None,
          json_body: Any = None, follow_redirects: bool = True, timeout: float = 60.0) -> Response:
    """Makes an HTTP request; returns a `Response` for any status. `ConnectionError` when the
    request fails, `TimeoutError` after `timeout` seconds."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    data = body.encode() if isinstance(body, str) else body
    if json_body is not None:
        data = json.dumps(json_body).encode()
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("content-type", "application/json"))
    request = urllib.request.Request(url, data=data, method=method, headers=dict(pairs))
    opener = urllib.request.build_opener(*([] if follow_redirects else [_NoRedirect()]))
    try:
        with opener.open(request, timeout=timeout) as answer:
            status, final, items, content = answer.status, answer.geturl(), answer.headers.items(), answer.read()
    except urllib.error.HTTPError as error:
        status, final, items, content = error.code, error.geturl(), list(error.headers.items()), error.read()
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise TimeoutError(str(error.reason)) from error
        raise ConnectionError(str(error.reason)) from error
    return Response(status, final, [(str(k), str(v)) for k, v in items], content, final != url)


def get(url: str, **kwargs: Any) -> Response:
    """`fetch(url, method="GET", ...)`."""
    return fetch(url, method="GET", **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    """`fetch(url, method="POST", ...)`."""
    return fetch(url, method="POST", **kwargs)
