"""asyncio for the sandbox: there are no sockets (not even the self-pipe an event loop makes to
wake itself up), so the SDK gives asyncio a loop that only waits for its next timer. Timers,
futures, tasks, `asyncio.sleep`, `gather` and `wait_for` work; waiting on a file descriptor is
refused. Installed as the default event loop policy when `asyncio` is first imported.
"""

import selectors
import time


class _TimerOnlySelector(selectors.BaseSelector):
    """`select` waits until the loop's next timer is due; there is nothing else to wait for."""

    def __init__(self):
        self._map = {}

    def register(self, fileobj, events, data=None):
        raise OSError("waiting on a file descriptor is not available in the sandbox")

    def unregister(self, fileobj):
        raise KeyError(fileobj)

    def select(self, timeout=None):
        if timeout is None:
            # Nothing is scheduled and nothing outside can wake the loop: it would hang forever.
            raise RuntimeError("the event loop has nothing left to wait for (a future that nothing completes)")
        if timeout > 0:
            time.sleep(timeout)
        return []

    def close(self):
        pass

    def get_map(self):
        return self._map


def install(asyncio):
    """Make `asyncio.run`, `new_event_loop` and `get_event_loop` use the timer-only loop."""

    class SandboxEventLoop(asyncio.SelectorEventLoop):
        def __init__(self):
            super().__init__(_TimerOnlySelector())

        def _make_self_pipe(self):
            self._ssock = self._csock = None
            self._internal_fds = 0

        def _close_self_pipe(self):
            pass

        def _write_to_self(self):
            pass  # callbacks from other threads: there are none in the sandbox

    class SandboxEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
        _loop_factory = SandboxEventLoop

    asyncio.SandboxEventLoop = SandboxEventLoop
    asyncio.set_event_loop_policy(SandboxEventLoopPolicy())
