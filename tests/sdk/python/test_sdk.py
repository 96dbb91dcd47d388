"""The Python host SDK, installed from the built wheel, driving the real `capsule worker`."""

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import capsule
from capsule import AsyncCapsule, Capsule, run, task


def test_wheel_installs_the_binary_and_the_interpreters(installed_binary):
    assert Path(capsule.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())
    out = subprocess.run([installed_binary, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("capsule ")
    shipped = Path(sys.prefix) / "share" / "capsule" / "interpreters"
    assert sorted(p.name for p in shipped.iterdir()) == ["javascript.capsule", "python.capsule"]
    with Capsule() as client:
        assert client.aio.binary == str(installed_binary)


def test_capsule_run_readme_example_verbatim(project):
    async def main():
        from capsule import run

        result = await run(
            file="./sandbox.py",
            args=["code to execute"]
        )
        return result

    result = asyncio.run(main())
    # eval("code to execute") is a SyntaxError in the guest: a failed envelope, not an exception.
    assert result["success"] is False
    assert result["error"]["error_type"] == "task_error"
    assert "SyntaxError" in result["error"]["message"]


def test_run_returns_the_envelope_with_capsule_run_aliases(project):
    result = asyncio.run(run(file="./sandbox.py", args=["6 * 7"]))
    assert result["success"] is True
    assert result["result"] == 42
    execution = result["execution"]
    assert execution["retries"] == execution["attempts"] - 1 == 0
    assert execution["ram_used"] == execution["peak_memory_bytes"] > 0
    assert execution["task_name"] == "main"


def test_run_typescript_source_with_capsule_run_import(project):
    result = asyncio.run(run(file="sandbox.ts", args=["[1, 2, 3].map((x) => x * 2)"]))
    assert result["success"] is True, result
    assert result["result"] == [2, 4, 6]


def test_task_runs_natively_on_the_host(project):
    spec = importlib.util.spec_from_file_location("sandbox_under_test", project / "sandbox.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.main, capsule.Task)
    assert module.main.name == "main"
    assert module.main.config == {"compute": "LOW", "ram": "64MB"}
    assert module.main("2 ** 10") == 1024
    with pytest.raises(TypeError, match="unknown option"):
        task(name="x", cpu="LOW")(lambda: 1)


def test_task_file_using_capsule_http_runs_natively(project):
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            self.send_response(201)
            self.send_header("content-type", self.headers["content-type"])
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = importlib.util.spec_from_file_location("fetcher_under_test", project / "fetcher.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        answer = module.main(f"http://127.0.0.1:{server.server_port}/echo")
    finally:
        server.shutdown()
    assert answer == {"status": 201, "echo": {"x": 1}, "type": "application/json"}


def test_client_run_task_kwargs_and_output(project):
    with Capsule() as client:
        seen = []
        result = client.run("kwargs.py", args=[2, 3], kwargs={"scale": 10}, on_stdout=seen.append)
        assert result.success and result.result == {"sum": 50}
        assert result.stdout == "a=2 b=3\n"
        assert "".join(seen) == "a=2 b=3\n"
        assert result.error is None
        assert client.run("kwargs.py", task="shout", args=["hi"]).result == "HI"
        missing = client.run("kwargs.py", task="nope")
        assert not missing.success and "nope" in missing.error.message


def test_bad_input_is_a_clear_error(project):
    with Capsule() as client:
        with pytest.raises(FileNotFoundError, match="missing.py"):
            client.run("missing.py")
        with pytest.raises(ValueError, match="timeout"):
            client.run("sandbox.py", args=["1"], timeout="soon")
        with pytest.raises(TypeError, match="args"):
            client.run("sandbox.py", args="1 + 1")
        (project / "legacy.wasm").write_bytes(b"\0asm")
        with pytest.raises(ValueError, match=r"\.capsule"):
            client.run("legacy.wasm")
        with pytest.raises(capsule.BuildError, match="broken.py"):
            client.run("broken.py")


def test_bundles_need_trust_like_the_cli(project, installed_binary):
    def capsule_cli(*args):
        subprocess.run([installed_binary, *args], check=True, capture_output=True, cwd=project)

    capsule_cli("build", "kwargs.py", "-o", "unsigned.capsule", "--target", os.uname().machine)
    capsule_cli("keygen", "-o", "ci.key")
    capsule_cli("build", "kwargs.py", "-o", "signed.capsule", "--target", os.uname().machine, "--sign", "ci.key")
    with Capsule() as client:
        refused = client.run("unsigned.capsule", args=[1])
        assert not refused.success
        assert refused.error.error_type == "bundle_invalid", refused.error
        assert client.run("signed.capsule", args=[1]).error.error_type == "bundle_invalid"
    with Capsule(trust="ci.key.pub") as client:
        assert client.run("signed.capsule", args=[1]).result == {"sum": 1}
        assert not client.run("unsigned.capsule", args=[1]).success
    with Capsule(allow_unsigned=True) as client:
        assert client.run("unsigned.capsule", args=[1]).result == {"sum": 1}


def test_two_hundred_concurrent_task_calls(project):
    async def main():
        async with AsyncCapsule() as client:
            return await asyncio.gather(*(client.run("sandbox.py", args=[f"{i} * 3"]) for i in range(200)))

    results = asyncio.run(main())
    assert [r.result for r in results] == [i * 3 for i in range(200)]


def test_cancelling_the_asyncio_task_cancels_the_call(project):
    async def main():
        async with AsyncCapsule() as client:
            await client.run("sleeper.py", args=[0])  # built and loaded
            call = asyncio.ensure_future(client.run("sleeper.py", args=[30]))
            await asyncio.sleep(1.5)
            started = time.monotonic()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert time.monotonic() - started < 1.0
            if client.protocol >= 2:
                deadline = time.monotonic() + 5
                while (await client.status())["running"] and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                assert (await client.status())["running"] == []
            # The client and its worker carry on.
            return (await client.run("sandbox.py", args=["2 + 2"])).result

    assert asyncio.run(main()) == 4


def test_worker_killed_under_the_client_then_the_next_call_works(project):
    async def main():
        async with AsyncCapsule() as client:
            assert (await client.run("sleeper.py", args=[0])).result == "woke up"  # built and loaded
            first = client.worker_pid
            call = asyncio.ensure_future(client.run("sleeper.py", args=[30]))
            await asyncio.sleep(1.5)
            os.kill(first, signal.SIGKILL)
            with pytest.raises(capsule.WorkerError, match="SIGKILL"):
                await call
            result = await client.run("sandbox.py", args=["40 + 2"])
            assert client.worker_pid not in (None, first)
            return result.result

    assert asyncio.run(main()) == 42


def test_stopped_worker_fails_the_call_by_its_deadline(project):
    async def main():
        async with AsyncCapsule(grace=1.0) as client:
            assert (await client.run("sandbox.py", args=["1"])).result == 1
            stopped = client.worker_pid
            os.kill(stopped, signal.SIGSTOP)
            started = time.monotonic()
            try:
                with pytest.raises(capsule.DeadlineExceeded):
                    await client.run("sandbox.py", args=["2"], timeout="1s")
                elapsed = time.monotonic() - started
            finally:
                try:
                    os.kill(stopped, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            # timeout 1 s + grace 1 s, then a ping of 1 s: the client gave up near 3 s.
            assert 2.5 <= elapsed < 6.0, elapsed
            result = await client.run("sandbox.py", args=["3"])
            assert client.worker_pid != stopped
            return result.result

    assert asyncio.run(main()) == 3


# ---- protocol 2: run_code, sessions, files, streaming ------------------------------------------


def test_run_code_python_and_javascript():
    with Capsule() as client:
        cell = client.run_code("import statistics\nprint('hi')\nstatistics.mean([1, 2, 3, 4])")
        assert cell.success, cell.error
        assert (cell.result, cell.format, cell.stdout) == (2.5, "json", "hi\n")
        js = client.run_code("[1, 2, 3].map(x => x * 2)", language="javascript")
        assert js.success and js.result == [2, 4, 6]
        failed = client.run_code("x = 1\n1 / 0")
        assert not failed.success and failed.error.error_type == "task_error"
        assert 'File "<cell>", line 2' in failed.error.traceback
        assert client.run_code("object()").format == "repr"


def test_run_code_limits_and_streaming():
    seen = []
    with Capsule() as client:
        cell = client.run_code("import time\nfor i in range(3):\n    print(i, flush=True)\n", on_stdout=seen.append)
        assert cell.success and cell.stdout == "0\n1\n2\n"
        assert "".join(seen) == "0\n1\n2\n"
        slow = client.run_code("while True: pass", timeout="500ms", compute="HIGH")
        assert not slow.success and slow.error.error_type == "timeout"


def test_session_keeps_state_and_files():
    with Capsule() as client, client.session("python") as session:
        session.files.write("data/in.csv", "a,b\n1,2\n3,4\n")
        cell = session.run_code("import csv\nrows = list(csv.DictReader(open('data/in.csv')))\nlen(rows)")
        assert cell.success and cell.result == 2, cell.error
        assert session.run_code("sum(int(r['b']) for r in rows)").result == 6
        session.run_code("open('/workspace/out.txt', 'w').write('done')")
        assert session.files.read("out.txt") == b"done"
        listed = {(f.path, f.type) for f in session.files.list()}
        assert {("data", "dir"), ("data/in.csv", "file"), ("out.txt", "file")} <= listed
        session.files.remove("out.txt")
        assert "out.txt" not in {f.path for f in session.files.list()}
        with pytest.raises(capsule.OperationError) as refused:
            session.files.read("../etc/passwd")
        assert refused.value.error_type == "invalid_args"
        session.reset()
        assert session.run_code("rows").error.error_type == "task_error"
        assert session.files.read_text("data/in.csv").startswith("a,b")


def test_session_workspace_holds_at_most_its_disk_limit():
    with Capsule() as client, client.session("python", disk="64KB") as session:
        cell = session.run_code(
            "import errno\nopen('a.bin', 'wb').write(b'x' * 40000)\n"
            "try:\n    open('b.bin', 'wb').write(b'y' * 40000)\n    r = 'written'\n"
            "except OSError as e:\n    r = errno.errorcode[e.errno]\nr")
        assert cell.result == "ENOSPC", cell
        assert session.run_code("open('c.bin', 'wb').write(b'z' * 40000)").error.error_type == "disk_limit"


def test_session_file_ops_wait_for_the_running_cell():
    async def main():
        async with AsyncCapsule() as client, client.session("python") as session:
            cell = asyncio.ensure_future(session.run_code(
                "import time\ntime.sleep(1)\nopen('late.txt', 'w').write('written by the cell')"))
            await asyncio.sleep(0.2)
            data = await session.files.read("late.txt")  # queued behind the cell
            return (await cell).success, data

    assert asyncio.run(main()) == (True, b"written by the cell")


def test_session_lost_after_a_limit():
    async def main():
        async with AsyncCapsule() as client:
            async with client.session("javascript") as session:
                assert (await session.run_code("let n = 41")).success
                assert (await session.run_code("n + 1")).result == 42
                stuck = await session.run_code("for (;;) {}", timeout="300ms")
                assert stuck.error.error_type == "timeout"
                after = await session.run_code("n")
                return after.error.error_type

    assert asyncio.run(main()) == "session_lost"


def test_two_hundred_concurrent_run_code_calls():
    async def main():
        async with AsyncCapsule() as client:
            return await asyncio.gather(*(client.run_code(f"{i} + 1") for i in range(200)))

    assert [r.result for r in asyncio.run(main())] == [i + 1 for i in range(200)]


def test_sync_client_shared_by_threads():
    from concurrent.futures import ThreadPoolExecutor

    with Capsule() as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: client.run_code(f"{i} * 2", language="javascript"), range(100)))
    assert [r.result for r in results] == [i * 2 for i in range(100)]


def test_cancelling_a_cell():
    async def main():
        async with AsyncCapsule() as client:
            cell = asyncio.ensure_future(client.run_code("import time\ntime.sleep(20)", timeout="60s"))
            await asyncio.sleep(1.0)
            cell.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cell
            deadline = time.monotonic() + 5
            while (await client.status())["running"] and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert (await client.status())["running"] == []
            return (await client.run_code("1 + 1")).result

    assert asyncio.run(main()) == 2
