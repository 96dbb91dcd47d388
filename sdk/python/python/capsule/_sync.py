"""`Capsule`: the synchronous twin of `AsyncCapsule`.

It runs an `AsyncCapsule` on an event loop in a private daemon thread and waits for each call,
so it works from plain scripts and from threads. Output callbacks run on that thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any, Awaitable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union

from ._client import AsyncCapsule
from ._duration import Duration
from ._errors import WorkerError
from ._result import Result
from ._session import AsyncSession, FileInfo

__all__ = ["Capsule", "Session", "Files"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.stopped = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="capsule-client", daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> "concurrent.futures.Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def call(self, coro: Awaitable[T]) -> T:
        if self.stopped:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise WorkerError("this client is closed")
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        self.stopped = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class Capsule:
    """A blocking client of one `capsule worker`; same arguments as `AsyncCapsule`.

    Use as `with Capsule() as capsule: capsule.run_code("1 + 1")`."""

    def __init__(
        self,
        *,
        binary: Optional[str] = None,
        trust: Union[str, Sequence[str], None] = None,
        allow_unsigned: bool = False,
        max_in_flight: int = 16,
        request_timeout: Optional[Duration] = None,
        grace: float = 5.0,
        cwd: Optional[Union[str, "os.PathLike[str]"]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._async = AsyncCapsule(binary=binary, trust=trust, allow_unsigned=allow_unsigned,
                                   max_in_flight=max_in_flight, request_timeout=request_timeout,
                                   grace=grace, cwd=cwd, env=env)
        self._thread = _LoopThread()

    @property
    def aio(self) -> AsyncCapsule:
        """The asyncio client underneath (its calls must run on `loop`)."""
        return self._async

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the client runs on."""
        return self._thread.loop

    def __enter__(self) -> "Capsule":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Starts the worker now (otherwise the first call does)."""
        self._thread.call(self._async.start())

    def close(self) -> None:
        """Stops the worker and the client's thread (again: no effect)."""
        if self._thread.stopped:
            return
        try:
            self._thread.call(self._async.close())
        finally:
            self._thread.stop()

    @property
    def worker_pid(self) -> Optional[int]:
        """The running worker's process id."""
        return self._async.worker_pid

    def run(self, bundle_or_file: Any, task: Optional[str] = None, args: Sequence[Any] = (),
            kwargs: Optional[Dict[str, Any]] = None, timeout: Any = None, on_stdout: Any = None,
            on_stderr: Any = None) -> Result:
        """See `AsyncCapsule.run`."""
        return self._thread.call(self._async.run(bundle_or_file, task, args, kwargs, timeout, on_stdout, on_stderr))

    def run_code(self, code: str, language: str = "python", timeout: Any = None, on_stdout: Any = None,
                 on_stderr: Any = None, **limits: Any) -> Result:
        """See `AsyncCapsule.run_code`."""
        return self._thread.call(self._async.run_code(code, language, timeout, on_stdout, on_stderr, **limits))

    def session(self, language: str = "python", **limits: Any) -> "Session":
        """Opens a session (see `AsyncCapsule.session`); use it as a context manager."""
        opened = self._thread.call(self._async.session(language, **limits).open())
        return Session(self._thread, opened)

    def status(self) -> Dict[str, Any]:
        """See `AsyncCapsule.status`."""
        return self._thread.call(self._async.status())


class Session:
    """A blocking view of an `AsyncSession`."""

    def __init__(self, thread: _LoopThread, session: AsyncSession) -> None:
        self._thread = thread
        self._session = session
        self.id = session.id
        self.language = session.language
        self.files = Files(thread, session)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._session.closed

    def run_code(self, code: str, timeout: Any = None, on_stdout: Any = None, on_stderr: Any = None,
                 **limits: Any) -> Result:
        """See `AsyncSession.run_code`."""
        return self._thread.call(self._session.run_code(code, timeout, on_stdout, on_stderr, **limits))

    def reset(self) -> None:
        """See `AsyncSession.reset`."""
        self._thread.call(self._session.reset())

    def close(self) -> None:
        """See `AsyncSession.close`."""
        self._thread.call(self._session.close())


class Files:
    """A blocking view of `AsyncFiles`."""

    def __init__(self, thread: _LoopThread, session: AsyncSession) -> None:
        self._thread = thread
        self._files = session.files

    def write(self, path: str, data: Union[bytes, str]) -> int:
        """See `AsyncFiles.write`."""
        return self._thread.call(self._files.write(path, data))

    def read(self, path: str) -> bytes:
        """See `AsyncFiles.read`."""
        return self._thread.call(self._files.read(path))

    def read_text(self, path: str) -> str:
        """See `AsyncFiles.read_text`."""
        return self._thread.call(self._files.read_text(path))

    def list(self, path: Optional[str] = None) -> List[FileInfo]:
        """See `AsyncFiles.list`."""
        return self._thread.call(self._files.list(path))

    def remove(self, path: str) -> None:
        """See `AsyncFiles.remove`."""
        self._thread.call(self._files.remove(path))
