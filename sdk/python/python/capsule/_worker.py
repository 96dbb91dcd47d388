"""One `capsule worker` process: spawning it, writing requests, routing its answers and events.

Requests carry unique ids; a reader task resolves each request's future when the line with its
id arrives (events go to the request's callback first). When the process exits or breaks the
protocol, every request still waiting fails with `WorkerError`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
from typing import Any, Callable, Deque, Dict, Optional, Sequence

from ._errors import WorkerError

__all__ = ["Worker", "EventHandler"]

EventHandler = Callable[[str, str], None]

# Answers may carry large results and outputs (a 50 MB argument is tested by the CLI).
_LINE_LIMIT = 1 << 30
# How much of the worker's stderr is kept to explain why it died.
_STDERR_TAIL = 8192


class _Pending:
    __slots__ = ("future", "on_event")

    def __init__(self, future: "asyncio.Future[Dict[str, Any]]", on_event: Optional[EventHandler]) -> None:
        self.future = future
        self.on_event = on_event


class Worker:
    """A running `capsule worker` and the requests in flight on it."""

    def __init__(self, process: asyncio.subprocess.Process, generation: int) -> None:
        self.process = process
        self.generation = generation
        self.hello: Dict[str, Any] = {}
        self._pending: Dict[Any, _Pending] = {}
        self._stderr: Deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._dead: Optional[WorkerError] = None
        self._reader = asyncio.ensure_future(self._read_answers())
        self._drain = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def spawn(cls, argv: Sequence[str], cwd: Optional[str], env: Optional[Dict[str, str]], generation: int) -> "Worker":
        """Starts `argv` (a `capsule worker` command line)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                limit=_LINE_LIMIT,
                start_new_session=True,
            )
        except OSError as error:
            raise WorkerError(f"cannot start `{' '.join(argv)}`: {error}") from error
        return cls(process, generation)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """False once the process exited or was given up on."""
        return self._dead is None

    @property
    def protocol(self) -> int:
        """The protocol version `hello` reported (1 when the worker did not know `hello`)."""
        return int(self.hello.get("protocol", 1))

    def knows(self, op: str) -> bool:
        """Whether the worker announced `op` in its `hello`."""
        return op in self.hello.get("ops", ())

    def submit(self, message: Dict[str, Any], on_event: Optional[EventHandler] = None) -> "asyncio.Future[Dict[str, Any]]":
        """Writes `message` (which has a unique `id`) and returns the future of its answer."""
        future: asyncio.Future[Dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self._dead is not None:
            future.set_exception(self._dead)
            return future
        self._pending[message["id"]] = _Pending(future, on_event)
        self._write(message)
        return future

    def send(self, message: Dict[str, Any]) -> None:
        """Writes `message` without waiting for its answer (a `cancel`); the answer is dropped."""
        if self._dead is None:
            self._write(message)

    def forget(self, request_id: Any) -> None:
        """Stops routing the answer of `request_id` (its caller went away)."""
        self._pending.pop(request_id, None)

    def _write(self, message: Dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(line)
        except (ConnectionError, RuntimeError) as error:
            self._fail(f"cannot write to the worker: {error}")

    async def drain(self) -> None:
        """Waits while the pipe to the worker is full (the worker reads at its own pace)."""
        stdin = self.process.stdin
        if stdin is None or self._dead is not None:
            return
        try:
            await stdin.drain()
        except (ConnectionError, RuntimeError) as error:
            self._fail(f"cannot write to the worker: {error}")

    async def _read_answers(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                try:
                    answer = json.loads(line)
                except ValueError:
                    self._fail(f"the worker wrote a line that is not JSON: {line[:200]!r}")
                    return
                self._route(answer)
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as error:
            self._fail(f"cannot read the worker's answers: {error}")
            return
        code = await self.process.wait()
        await asyncio.wait({self._drain}, timeout=1.0)
        self._fail(f"the worker exited ({_describe_exit(code)})")

    def _route(self, answer: Any) -> None:
        if not isinstance(answer, dict) or "id" not in answer:
            return
        key = answer["id"]
        pending = self._pending.get(_hashable(key))
        if pending is None:
            return
        if "event" in answer:
            if pending.on_event is not None:
                try:
                    pending.on_event(str(answer["event"]), str(answer.get("data", "")))
                except Exception:  # a user callback must not break the reader
                    pass
            return
        del self._pending[_hashable(key)]
        if not pending.future.done():
            pending.future.set_result(answer)

    async def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        while True:
            chunk = await stderr.read(4096)
            if not chunk:
                return
            self._stderr.append(chunk)
            self._stderr_size += len(chunk)
            while self._stderr_size > _STDERR_TAIL and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    def stderr_tail(self) -> str:
        """The last lines the worker wrote on stderr."""
        return b"".join(self._stderr).decode("utf-8", "replace")[-_STDERR_TAIL:].strip()

    def _fail(self, reason: str) -> None:
        if self._dead is not None:
            return
        tail = self.stderr_tail()
        self._dead = WorkerError(reason + (f"; its stderr ends with:\n{tail}" if tail else ""))
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if not entry.future.done():
                entry.future.set_exception(self._dead)
        if self.process.returncode is None:
            _kill(self.process)

    def kill(self, reason: str) -> None:
        """Kills the process; every waiting request fails with `reason`."""
        _kill(self.process)
        self._fail(reason)

    async def close(self, timeout: float = 10.0) -> None:
        """Closes stdin (the worker answers what runs and exits), then waits; kills it after
        `timeout` seconds."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill("the worker did not exit after its input was closed")
            await self.process.wait()
        await asyncio.wait({self._reader, self._drain}, timeout=1.0)
        self._fail("the worker was closed")


def _hashable(key: Any) -> Any:
    return json.dumps(key, sort_keys=True) if isinstance(key, (dict, list)) else key


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                process.kill()
            except ProcessLookupError:
                pass


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
