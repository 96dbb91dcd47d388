"""Modules patched for the sandbox when they are first imported: `asyncio` gets an event loop that
needs no sockets (see `_asyncio.py`), and the third-party HTTP clients go over the host's wasi:http.

A task has no sockets, so the SDK routes
`urllib3` (and with it `requests`) and `httpx` through `capsule.http.fetch`, where the runner checks
every request against the task's `allowed_hosts` and lists it in `execution.host_requests`.

The clients keep doing everything else themselves (sessions, cookies, redirects — each hop is a
new request through the host —, retries, decoding). The patch is applied when the client module is
first imported, by a finder ahead of the normal ones; nothing is imported eagerly.
"""

import http
import importlib.abc
import io
import sys

from .http import fetch


def _reason(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _body_bytes(body):
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    return b"".join(part.encode("utf-8") if isinstance(part, str) else bytes(part) for part in body)


def _patch_urllib3(module):
    """`HTTPConnectionPool.urlopen`: every urllib3 request (PoolManager, requests) ends there."""
    pool_class = module.HTTPConnectionPool

    def urlopen(self, method, url, body=None, headers=None, retries=None, redirect=True,
                assert_same_host=True, timeout=None, pool_timeout=None, release_conn=None,
                chunked=False, body_pos=None, preload_content=True, decode_content=True,
                **response_kw):
        from urllib3._collections import HTTPHeaderDict
        from urllib3.response import HTTPResponse

        if not url.startswith(("http://", "https://")):
            default_port = {"http": 80, "https": 443}.get(self.scheme)
            port = "" if self.port in (None, default_port) else f":{self.port}"
            url = f"{self.scheme}://{self.host}{port}{url}"
        answer = fetch(url, method=method, headers=list(dict(headers or self.headers or {}).items()),
                       body=_body_bytes(body), follow_redirects=bool(redirect))
        return HTTPResponse(
            body=io.BytesIO(answer.body),
            headers=HTTPHeaderDict(answer.headers),
            status=answer.status,
            reason=_reason(answer.status),
            preload_content=preload_content,
            decode_content=decode_content,
            request_method=method,
            request_url=answer.url,
            retries=retries,
        )

    pool_class.urlopen = urlopen


def _patch_httpx(module):
    """httpx's default transports (sync and async) send through the host."""
    import httpx

    def send(request, body):
        answer = fetch(str(request.url), method=request.method, headers=request.headers.multi_items(),
                       body=body or None, follow_redirects=False)
        # The body arrives whole: drop the framing headers that described it on the wire.
        headers = [(k, v) for k, v in answer.headers if k.lower() not in ("transfer-encoding",)]
        return httpx.Response(status_code=answer.status, headers=headers,
                              stream=httpx.ByteStream(answer.body), request=request)

    def handle_request(self, request):
        return send(request, request.read())

    async def handle_async_request(self, request):
        return send(request, await request.aread())

    def init(self, *args, **kwargs):
        pass  # no connection pool: nothing to set up

    def close(self):
        pass

    async def aclose(self):
        pass

    async def aenter(self):
        return self

    async def aexit(self, *exc):
        pass

    for name, handler in (("HTTPTransport", handle_request), ("AsyncHTTPTransport", handle_async_request)):
        transport = getattr(module, name)
        transport.__init__ = init
        if name == "HTTPTransport":
            transport.handle_request = handler
            transport.close = close
            transport.__enter__ = lambda self: self
            transport.__exit__ = lambda self, *exc: None
        else:
            transport.handle_async_request = handler
            transport.aclose = aclose
            transport.__aenter__ = aenter
            transport.__aexit__ = aexit


def _patch_asyncio(module):
    from . import _asyncio

    _asyncio.install(module)


_PATCHES = {
    "urllib3.connectionpool": _patch_urllib3,
    "httpx._transports.default": _patch_httpx,
    "asyncio": _patch_asyncio,
}


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch):
        self.loader = loader
        self.patch = patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.patch(module)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def install():
    """Patch the modules when they are imported, or now if they already are (done by the SDK at
    startup)."""
    if any(isinstance(f, _PatchingFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _PatchingFinder())
    for name, patch in _PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
