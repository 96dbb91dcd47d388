"""Sessions: a live interpreter in the worker whose state persists across cells, and its files."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Generator, List, Optional, Union

from ._duration import Duration
from ._errors import OperationError
from ._fields import limits
from ._result import Result

if TYPE_CHECKING:
    from ._client import AsyncCapsule, OutputCallback
    from ._worker import Worker

__all__ = ["AsyncSession", "AsyncFiles", "FileInfo", "SessionOpener"]


@dataclass(frozen=True)
class FileInfo:
    """One entry of `files.list`: a path relative to the workspace, its type (`file`, `dir` or
    `symlink`, not followed), a size."""

    path: str
    type: str
    size: int


def _lost(session: "AsyncSession", why: str) -> Dict[str, Any]:
    return {"success": False, "result": None,
            "error": {"error_type": "session_lost", "message": f"session `{session.id}` {why}"},
            "execution": {}, "output": {"stdout": "", "stderr": ""}}


class AsyncSession:
    """A live interpreter (`python` or `javascript`) with its own `/workspace`.

    Cells run one at a time in arrival order; variables, imports and definitions persist. A cell
    that hits a limit or is cancelled ends the session (its next call gives `session_lost`)."""

    def __init__(self, client: "AsyncCapsule", worker: "Worker", session_id: str, language: str,
                 default_timeout: Optional[float]) -> None:
        self._client = client
        self._worker = worker
        self.id = session_id
        self.language = language
        self._default_timeout = default_timeout
        self.closed = False
        self.files = AsyncFiles(self)

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _usable(self) -> Optional[str]:
        if self.closed:
            return "was closed"
        if not self._worker.alive:
            return "was lost: its worker exited"
        return None

    async def run_code(self, code: str, timeout: Optional[Duration] = None,
                       on_stdout: Optional["OutputCallback"] = None, on_stderr: Optional["OutputCallback"] = None,
                       *, compute: Optional[Union[str, int]] = None) -> Result:
        """Runs a cell in this session; `timeout` and `compute` replace the session's for it."""
        why = self._usable()
        if why:
            return Result.from_envelope(_lost(self, why), cell=True)
        if not isinstance(code, str):
            raise TypeError(f"`code` must be a string, got {type(code).__name__}")
        message: Dict[str, Any] = {"op": "run_code", "session": self.id, "code": code}
        limits(message, timeout=timeout, ram=None, compute=compute, allow_hosts=None, env=None)
        return await self._client._cell(message, timeout, on_stdout, on_stderr, self._default_timeout)

    async def op(self, op: str, **fields: Any) -> Dict[str, Any]:
        """Sends `op` for this session; refusals raise `OperationError`."""
        why = self._usable()
        if why:
            raise OperationError("session_lost", f"session `{self.id}` {why}")
        # Session ops wait for the session's running and queued cells, which have their own
        # deadlines: only the worker's liveness bounds them.
        return await self._client.op({"op": op, "session": self.id, **fields}, self._worker, None)

    async def reset(self) -> None:
        """Replaces the interpreter by a fresh one; the workspace and its files stay."""
        await self.op("session.reset")

    async def close(self) -> None:
        """Ends the session and deletes its workspace (again: no effect)."""
        if self.closed:
            return
        self.closed = True
        if self._worker.alive:
            try:
                await self._client.op({"op": "session.close", "session": self.id}, self._worker, None)
            except OperationError as error:
                if error.error_type != "session_lost":
                    raise

    def __repr__(self) -> str:
        return f"<capsule session {self.id} {self.language}{' closed' if self.closed else ''}>"


class AsyncFiles:
    """The session's `/workspace` from the host: paths are relative to it."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def write(self, path: str, data: Union[bytes, str]) -> int:
        """Writes `data` (text is UTF-8) to `path`, creating directories; returns the size."""
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"`data` must be bytes or str, got {type(data).__name__}")
        answer = await self._session.op("files.write", path=path, data=base64.b64encode(bytes(data)).decode())
        return int(answer.get("written", len(data)))

    async def read(self, path: str) -> bytes:
        """The bytes of `path` (the worker returns at most 64 MiB)."""
        answer = await self._session.op("files.read", path=path)
        return base64.b64decode(answer.get("data", ""))

    async def read_text(self, path: str) -> str:
        """The text of `path` (UTF-8)."""
        return (await self.read(path)).decode()

    async def list(self, path: Optional[str] = None) -> List[FileInfo]:
        """Everything under `path` (default: the workspace), recursively, sorted."""
        fields = {"path": path} if path is not None else {}
        answer = await self._session.op("files.list", **fields)
        return [FileInfo(str(f.get("path")), str(f.get("type")), int(f.get("size", 0))) for f in answer.get("files", [])]

    async def remove(self, path: str) -> None:
        """Deletes the file (or directory) `path`."""
        await self._session.op("files.remove", path=path)


class SessionOpener:
    """What `AsyncCapsule.session()` returns: `await` it for the session, or `async with` it to
    close the session on exit."""

    def __init__(self, client: "AsyncCapsule", message: Dict[str, Any], default_timeout: Optional[float]) -> None:
        self._client = client
        self._message = message
        self._default_timeout = default_timeout
        self._session: Optional[AsyncSession] = None

    async def open(self) -> AsyncSession:
        """Opens the session."""
        worker = await self._client.start()
        answer = await self._client.op(dict(self._message), worker)
        self._session = AsyncSession(self._client, worker, str(answer["session"]),
                                     str(self._message["language"]), self._default_timeout)
        return self._session

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self.open().__await__()

    async def __aenter__(self) -> AsyncSession:
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        if self._session is not None:
            await self._session.close()
