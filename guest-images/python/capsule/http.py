"""Outgoing HTTP for Capsule tasks.

    from capsule import task
    from capsule.http import fetch

    @task(allowed_hosts=["api.example.com"])
    def main():
        return fetch("https://api.example.com/items").json()

A task has no sockets: requests go through the host, which checks the host name of the request and
of every redirect hop against the task's `allowed_hosts` before connecting. A refused request raises
`HostDeniedError` (a `PermissionError`); left uncaught, the task fails with `host_denied`. Every
request is listed in the envelope's `execution.host_requests`. `urllib.request.urlopen` goes the
same way: the SDK installs an opener whose http/https handler calls `fetch`.
"""

import base64
import io
import json
import urllib.error
import urllib.request
import urllib.response
from email.message import Message

import _capsule_host


class HostDeniedError(PermissionError):
    """The request, or a redirect, went to a host the task's `allowed_hosts` does not allow."""


class Response:
    """An HTTP response: `status`, `url` (after redirects), `headers` ([(name, value)]), `body`."""

    def __init__(self, status, url, headers, body, redirected):
        self.status = status
        self.url = url
        self.headers = headers
        self.body = body
        self.redirected = redirected

    @property
    def ok(self):
        return 200 <= self.status < 300

    def header(self, name, default=None):
        """The first value of header `name` (case-insensitive)."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def text(self, encoding="utf-8"):
        return self.body.decode(encoding, errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.url}>"


def fetch(url, *, method="GET", headers=None, body=None, json_body=None, follow_redirects=True):
    """Make an HTTP request; returns a `Response` (any status), raises `HostDeniedError` for a
    host the task may not reach, `TimeoutError` past the task's deadline and `ConnectionError`
    when the request fails. With `follow_redirects=False` a redirect is returned as it is."""
    request = {"method": method, "url": url}
    if not follow_redirects:
        request["follow_redirects"] = False
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if json_body is not None:
        body = json.dumps(json_body)
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("content-type", "application/json"))
    request["headers"] = [[str(k), str(v)] for k, v in pairs]
    if isinstance(body, str):
        request["body"] = body
    elif body is not None:
        request["body_base64"] = base64.b64encode(bytes(body)).decode("ascii")
    ok, payload = _capsule_host.http_fetch(json.dumps(request))
    if not ok:
        error_type, message, _ = payload
        raise {
            "host_denied": HostDeniedError,
            "invalid_args": ValueError,
            "timeout": TimeoutError,
        }.get(error_type, ConnectionError)(message)
    answer = json.loads(payload)
    content = (base64.b64decode(answer["body_base64"]) if "body_base64" in answer
               else answer.get("body", "").encode("utf-8"))
    return Response(answer["status"], answer["url"], [tuple(h) for h in answer["headers"]], content,
                    answer.get("redirected", False))


def get(url, **kwargs):
    return fetch(url, method="GET", **kwargs)


def post(url, **kwargs):
    return fetch(url, method="POST", **kwargs)


class _CapsuleHTTPHandler(urllib.request.BaseHandler):
    """urllib's http/https handler, ahead of the socket-based ones (which cannot connect here)."""

    handler_order = 100

    def http_open(self, request):
        try:
            response = fetch(request.full_url, method=request.get_method(),
                             headers=request.header_items(), body=request.data)
        except (HostDeniedError, ValueError, TimeoutError):
            raise
        except ConnectionError as error:
            raise urllib.error.URLError(str(error)) from error
        headers = Message()
        for name, value in response.headers:
            headers[name] = value
        answer = urllib.response.addinfourl(io.BytesIO(response.body), headers, response.url,
                                            response.status)
        answer.msg = ""  # the reason phrase, which urllib's error processor reads
        return answer

    https_open = http_open


def install_urllib_opener():
    """Route `urllib.request.urlopen` through `fetch` (done by the SDK at startup)."""
    urllib.request.install_opener(urllib.request.build_opener(_CapsuleHTTPHandler))
