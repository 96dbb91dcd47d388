"""`AsyncCapsule`: the asyncio client over one long-lived `capsule worker`.

The worker is started on first use and started again after it dies. Every call has a client-side
deadline (its timeout plus `grace`): when it passes, the client pings the worker; a live worker is
asked to cancel the call, a hung one is killed (the next call starts a fresh one). Calls without
a known timeout keep waiting as long as the worker answers those pings.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ._build import Builder, is_source
from ._duration import Duration, to_seconds, to_text
from ._fields import limits, split_list
from ._errors import DeadlineExceeded, OperationError, UnsupportedError, WorkerError
from ._binary import find_binary
from ._result import Result
from ._session import AsyncSession, SessionOpener
from ._worker import EventHandler, Worker

__all__ = ["AsyncCapsule", "OutputCallback"]

OutputCallback = Callable[[str], None]
PathLike = Union[str, "os.PathLike[str]"]

# The worker's own defaults for `run_code` (also announced by `hello`).
_DEFAULT_CELL_TIMEOUT = 30.0
# How often a call with no known deadline checks that the worker is still answering.
_LIVENESS_INTERVAL = 30.0
# Requests the worker may hold beyond the client's bound, so `cancel` and pings are always read.
_CONTROL_HEADROOM = 4


class AsyncCapsule:
    """A client of one `capsule worker` (asyncio). Use as `async with AsyncCapsule() as capsule:`.

    Args:
        binary: the `capsule` executable (default: `$CAPSULE_BIN`, the wheel's, or `PATH`'s).
        trust: public keys (or `.pub` files) whose signed bundles may run, as `--trust`.
        allow_unsigned: run unsigned bundles too, as `--allow-unsigned`. Task sources given to
            `run` are built and signed with a local key the worker trusts, so they need neither.
        max_in_flight: calls sent to the worker at once; more wait in the client.
        request_timeout: a deadline for every call, as the worker's `--request-timeout`.
        grace: seconds added to a call's timeout before the client gives up on the worker.
        cwd: the worker's directory (relative bundle paths and task directories resolve there).
        env: the worker's environment (default: this process's).
    """

    def __init__(
        self,
        *,
        binary: Optional[str] = None,
        trust: Union[str, Sequence[str], None] = None,
        allow_unsigned: bool = False,
        max_in_flight: int = 16,
        request_timeout: Optional[Duration] = None,
        grace: float = 5.0,
        cwd: Optional[PathLike] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        if not 1 <= max_in_flight <= 250:
            raise ValueError(f"invalid `max_in_flight`: {max_in_flight!r}; expected 1 to 250")
        if grace <= 0:
            raise ValueError(f"invalid `grace`: {grace!r}; it must be positive")
        self._binary_arg = binary
        self._trust = split_list(trust)
        self._allow_unsigned = allow_unsigned
        self._max_in_flight = max_in_flight
        self._request_timeout = to_seconds(request_timeout, "request_timeout") if request_timeout is not None else None
        self._request_timeout_text = to_text(request_timeout, "request_timeout") if request_timeout is not None else None
        self.grace = grace
        self._cwd = str(Path(cwd or os.getcwd()).resolve())
        self._env = dict(env) if env is not None else None
        self._ids = itertools.count(1)
        self._slots: Optional[asyncio.Semaphore] = None
        self._start_lock: Optional[asyncio.Lock] = None
        self._worker: Optional[Worker] = None
        self._generation = 0
        self._builder: Optional[Builder] = None
        self._closed = False

    # ---- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> "AsyncCapsule":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def binary(self) -> str:
        """The `capsule` executable this client runs."""
        return find_binary(self._binary_arg)

    async def start(self) -> Worker:
        """Starts the worker now (otherwise the first call does); returns it."""
        if self._closed:
            raise WorkerError("this client is closed")
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
            self._slots = asyncio.Semaphore(self._max_in_flight)
        async with self._start_lock:
            if self._worker is not None and self._worker.alive:
                return self._worker
            builder = self._get_builder()
            argv = [builder.binary, "worker", "--max-in-flight", str(self._max_in_flight + _CONTROL_HEADROOM),
                    "--trust", str(await builder.ensure_key())]
            for key in self._trust:
                argv += ["--trust", key]
            if self._allow_unsigned:
                argv.append("--allow-unsigned")
            if self._request_timeout_text:
                argv += ["--request-timeout", self._request_timeout_text]
            self._generation += 1
            worker = await Worker.spawn(argv, self._cwd, self._env, self._generation)
            answer = await self._wait_alive(worker, worker.submit({"id": f"hello-{next(self._ids)}", "op": "hello"}), 60.0)
            if answer is None:
                worker.kill("the worker did not answer `hello` within 60 s")
                raise WorkerError(f"the worker did not answer `hello` within 60 s: {worker.stderr_tail()}")
            if "protocol" in answer:
                worker.hello = answer
            self._worker = worker
            return worker

    async def close(self) -> None:
        """Stops the worker: it finishes what is running, answers it, and exits."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None and worker.alive:
            await worker.close()

    @property
    def worker_pid(self) -> Optional[int]:
        """The running worker's process id (None before the first call or after it died)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive else None

    @property
    def protocol(self) -> int:
        """The running worker's protocol version (1 or 2; 0 before it started)."""
        return self._worker.protocol if self._worker is not None else 0

    def _get_builder(self) -> Builder:
        if self._builder is None:
            self._builder = Builder(find_binary(self._binary_arg), self._env)
        return self._builder

    # ---- calls ----------------------------------------------------------------------------

    async def run(
        self,
        bundle_or_file: PathLike,
        task: Optional[str] = None,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        timeout: Optional[Duration] = None,
        on_stdout: Optional[OutputCallback] = None,
        on_stderr: Optional[OutputCallback] = None,
    ) -> Result:
        """Runs a task of a bundle, or of a task source (`.py`, `.js`, `.ts`, ...: built and
        cached first). `timeout` may only narrow the task's own. `on_stdout`/`on_stderr` get the
        task's output when it ends."""
        path = Path(self._cwd, os.fspath(bundle_or_file)).resolve()
        if path.suffix == ".wasm":
            raise ValueError(f"`{bundle_or_file}` is a .wasm module; Capsule runs `.capsule` bundles or task sources (.py, .js, .ts)")
        if not path.is_file():
            raise FileNotFoundError(f"no such task file or bundle: `{bundle_or_file}`")
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise TypeError(f"`args` must be a list, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"`kwargs` must be a dict, got {type(kwargs).__name__}")
        await self.start()
        bundle = await self._get_builder().bundle(path) if is_source(path) else path
        message: Dict[str, Any] = {"bundle": str(bundle), "args": list(args)}
        if task is not None:
            message["task"] = task
        if kwargs:
            message["kwargs"] = dict(kwargs)
        deadline = self._request_timeout
        if timeout is not None:
            message["timeout"] = to_text(timeout)
            deadline = min(to_seconds(timeout), deadline or float("inf"))
        # Today's worker refuses `stream` on task calls (the protocol document allows it): the
        # callbacks get the task's whole output when it ends.
        answer = await self._call(message, deadline, None)
        result = _envelope_result(answer, cell=False)
        if on_stdout is not None and result.stdout:
            on_stdout(result.stdout)
        if on_stderr is not None and result.stderr:
            on_stderr(result.stderr)
        return result

    async def run_code(
        self,
        code: str,
        language: str = "python",
        timeout: Optional[Duration] = None,
        on_stdout: Optional[OutputCallback] = None,
        on_stderr: Optional[OutputCallback] = None,
        *,
        ram: Optional[str] = None,
        compute: Optional[Union[str, int]] = None,
        allow_hosts: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> Result:
        """Runs `code` like a notebook cell in a fresh sandbox (`python` or `javascript`): the
        final expression's value is `result` (`repr` for values that are not JSON)."""
        if not isinstance(code, str):
            raise TypeError(f"`code` must be a string, got {type(code).__name__}")
        message: Dict[str, Any] = {"op": "run_code", "language": language, "code": code}
        limits(message, timeout=timeout, ram=ram, compute=compute, allow_hosts=allow_hosts, env=env)
        return await self._cell(message, timeout, on_stdout, on_stderr)

    def session(
        self,
        language: str = "python",
        *,
        timeout: Optional[Duration] = None,
        ram: Optional[str] = None,
        compute: Optional[Union[str, int]] = None,
        allow_hosts: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        disk: Optional[str] = None,
    ) -> SessionOpener:
        """Opens a live interpreter whose state persists across cells, with a `/workspace`
        directory reachable through `session.files` and holding at most `disk` (default 1GiB).
        `await` it, or use `async with`."""
        message: Dict[str, Any] = {"op": "session.open", "language": language}
        limits(message, timeout=timeout, ram=ram, compute=compute, allow_hosts=allow_hosts, env=env)
        if disk is not None:
            message["disk"] = str(disk)
        default = to_seconds(timeout) if timeout is not None else None
        return SessionOpener(self, message, default)

    async def status(self) -> Dict[str, Any]:
        """What the worker is doing (protocol 2): running requests, counters, sessions."""
        answer = await self.op({"op": "status"})
        return dict(answer.get("status") or {})

    # ---- plumbing shared with sessions ----------------------------------------------------

    async def _cell(self, message: Dict[str, Any], timeout: Optional[Duration],
                    on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback],
                    default_timeout: Optional[float] = None) -> Result:
        worker = await self.start()
        if worker.protocol < 2 or not worker.knows("run_code"):
            raise UnsupportedError("this capsule worker does not know `run_code` (it speaks protocol "
                                   f"{worker.protocol}); install a capsule with worker protocol 2")
        if timeout is not None:
            deadline = to_seconds(timeout)
        elif default_timeout is not None:
            deadline = default_timeout
        else:
            deadline = _default_cell_timeout(worker)
        self._stream(message, worker, on_stdout, on_stderr)
        answer = await self._call(message, deadline, _events(on_stdout, on_stderr))
        return _envelope_result(answer, cell=True)

    async def op(self, message: Dict[str, Any], worker: Optional[Worker] = None,
                 deadline: Optional[float] = _DEFAULT_CELL_TIMEOUT) -> Dict[str, Any]:
        """Sends a protocol-2 op that answers without an envelope; a refusal raises
        `OperationError`. With `deadline=None` it waits as long as the worker answers pings
        (a session's ops queue behind its running cells)."""
        worker = worker or await self.start()
        if worker.protocol < 2 or not worker.knows(message["op"]):
            raise UnsupportedError(f"this capsule worker does not know `{message['op']}` (protocol {worker.protocol})")
        answer = await self._call(message, deadline, None, worker)
        error = answer.get("error")
        if error:
            raise OperationError(str(error.get("error_type", "internal")), str(error.get("message", "")))
        return answer

    @staticmethod
    def _stream(message: Dict[str, Any], worker: Worker, on_stdout: Any, on_stderr: Any) -> None:
        if (on_stdout or on_stderr) and worker.protocol >= 2:
            message["stream"] = True

    async def _call(self, message: Dict[str, Any], deadline: Optional[float],
                    on_event: Optional[EventHandler], worker: Optional[Worker] = None) -> Dict[str, Any]:
        assert self._slots is not None
        async with self._slots:
            worker = worker or await self.start()
            request_id = next(self._ids)
            message["id"] = request_id
            future = worker.submit(message, on_event)
            await worker.drain()
            try:
                return await self._await_answer(worker, request_id, future, deadline)
            except asyncio.CancelledError:
                worker.forget(request_id)
                if worker.protocol >= 2:
                    worker.send({"id": f"cancel-{next(self._ids)}", "op": "cancel", "target": request_id})
                raise

    async def _await_answer(self, worker: Worker, request_id: int, future: "asyncio.Future[Dict[str, Any]]",
                            deadline: Optional[float]) -> Dict[str, Any]:
        expires = time.monotonic() + deadline + self.grace if deadline is not None else None
        while True:
            wait = _LIVENESS_INTERVAL if expires is None else max(0.0, expires - time.monotonic())
            done, _ = await asyncio.wait({future}, timeout=min(wait, _LIVENESS_INTERVAL))
            if done:
                return future.result()
            alive = await self._ping(worker)
            if not alive:
                reason = (f"the worker stopped answering (no answer to a ping within {self.grace:g} s); "
                          "it was killed and the next call starts a new one")
                worker.kill(reason)
                if future.done() and future.exception() is None:
                    return future.result()
                raise DeadlineExceeded(reason)
            if expires is not None and time.monotonic() >= expires:
                worker.forget(request_id)
                if worker.protocol >= 2:
                    worker.send({"id": f"cancel-{next(self._ids)}", "op": "cancel", "target": request_id})
                raise DeadlineExceeded(
                    f"no answer within {deadline:g} s + {self.grace:g} s of grace; the worker is alive "
                    "and the request was cancelled")

    async def _ping(self, worker: Worker) -> bool:
        """Whether the worker still reads and answers (`hello`; a protocol-1 worker answers it
        with an `invalid_args` envelope, which is as good)."""
        future = worker.submit({"id": f"ping-{next(self._ids)}", "op": "hello"})
        return await self._wait_alive(worker, future, self.grace) is not None

    @staticmethod
    async def _wait_alive(worker: Worker, future: "asyncio.Future[Dict[str, Any]]", seconds: float) -> Optional[Dict[str, Any]]:
        await worker.drain()
        done, _ = await asyncio.wait({future}, timeout=seconds)
        if not done:
            # Nobody waits for it any more: if the worker dies, its error is expected.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            return None
        return future.result()


def _events(on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]) -> Optional[EventHandler]:
    if on_stdout is None and on_stderr is None:
        return None

    def handle(event: str, data: str) -> None:
        target = on_stdout if event == "stdout" else on_stderr if event == "stderr" else None
        if target is not None:
            target(data)

    return handle


def _default_cell_timeout(worker: Worker) -> float:
    defaults = worker.hello.get("defaults") or {}
    try:
        return to_seconds(defaults.get("timeout", _DEFAULT_CELL_TIMEOUT))
    except ValueError:
        return _DEFAULT_CELL_TIMEOUT


def _envelope_result(answer: Dict[str, Any], cell: bool) -> Result:
    envelope = answer.get("envelope")
    if not isinstance(envelope, dict):
        error = answer.get("error") or {}
        envelope = {"success": False, "result": None,
                    "error": {"error_type": error.get("error_type", "internal"),
                              "message": error.get("message", f"the worker answered without an envelope: {answer!r:.200}")},
                    "execution": {}, "output": {"stdout": "", "stderr": ""}}
    return Result.from_envelope(envelope, cell=cell)
