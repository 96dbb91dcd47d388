// The Node host SDK, installed from the npm tarball into a fresh project, driving the real
// `capsule worker` it ships.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { createRequire } from "node:module";
import { Capsule, DeadlineExceeded, OperationError, WorkerError, findBinary, run, task } from "capsule";

const require = createRequire(import.meta.url);

function project() {
  const dir = mkdtempSync(join(tmpdir(), "capsule-node-"));
  cpSync(process.env.FIXTURES, dir, { recursive: true });
  return dir;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("the package ships the binary and the interpreters", () => {
  const binary = findBinary();
  const pkg = dirname(require.resolve("capsule/package.json"));
  assert.equal(binary, join(pkg, "bin", "capsule"));
  assert.deepEqual(readdirSync(join(pkg, "share", "capsule", "interpreters")).sort(), ["javascript.capsule", "python.capsule"]);
});

test("capsule-run's run() example, verbatim", async () => {
  const dir = project();
  process.chdir(dir);
  const { run } = await import("capsule/runner");

  const result = await run({
    file: './sandbox.ts',
    args: ['code to execute']
  });

  // eval("code to execute") is a SyntaxError in the guest: a failed envelope.
  assert.equal(result.success, false);
  assert.equal(result.error.error_type, "task_error");
});

test("run() returns the envelope with capsule-run's aliases", async () => {
  const dir = project();
  const result = await run({ file: "sandbox.ts", args: ["6 * 7"], cwd: dir });
  assert.equal(result.success, true);
  assert.equal(result.result, 42);
  assert.equal(result.execution.retries, result.execution.attempts - 1);
  assert.equal(result.execution.ram_used, result.execution.peak_memory_bytes);
  const python = await run({ file: "sandbox.py", args: ["2 ** 10"], cwd: dir });
  assert.equal(python.result, 1024);
});

test("task() runs natively on the host", () => {
  const double = task({ name: "double", compute: "LOW" }, (x) => x * 2);
  assert.equal(double(21), 42);
  assert.equal(double.name, "double");
  assert.throws(() => task({ cpu: "LOW" }, () => 1), /unknown option/);
});

test("client: kwargs, other tasks, output, bad input", async () => {
  const dir = project();
  const capsule = new Capsule({ cwd: dir });
  try {
    const seen = [];
    const result = await capsule.run("kwargs.py", { args: [2, 3], kwargs: { scale: 10 }, onStdout: (t) => seen.push(t) });
    assert.deepEqual(result.result, { sum: 50 });
    assert.equal(result.stdout, "a=2 b=3\n");
    assert.equal(seen.join(""), "a=2 b=3\n");
    assert.equal((await capsule.run("kwargs.py", { task: "shout", args: ["hi"] })).result, "HI");
    await assert.rejects(capsule.run("missing.py"), /missing\.py/);
    await assert.rejects(capsule.run("sandbox.py", { args: ["1"], timeout: "soon" }), RangeError);
    await assert.rejects(capsule.run("sandbox.py", { args: "1" }), TypeError);
    await assert.rejects(capsule.run("broken.py"), { name: "BuildError", message: /broken\.py/ });
  } finally {
    await capsule.close();
  }
});

test("200 concurrent task calls", async () => {
  const dir = project();
  const capsule = new Capsule({ cwd: dir });
  try {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => capsule.run("sandbox.ts", { args: [`${i} * 3`] })));
    assert.deepEqual(results.map((r) => r.result), Array.from({ length: 200 }, (_, i) => i * 3));
  } finally {
    await capsule.close();
  }
});

test("aborting a call cancels it; the client carries on", async () => {
  const dir = project();
  const capsule = new Capsule({ cwd: dir });
  try {
    await capsule.run("sleeper.py", { args: [0] });
    const controller = new AbortController();
    const call = capsule.run("sleeper.py", { args: [30], signal: controller.signal });
    await sleep(1500);
    const started = Date.now();
    controller.abort();
    await assert.rejects(call, { name: "AbortError" });
    assert.ok(Date.now() - started < 1000);
    if (capsule.protocol >= 2) {
      const until = Date.now() + 5000;
      while ((await capsule.status()).running.length && Date.now() < until) await sleep(100);
      assert.deepEqual((await capsule.status()).running, []);
    }
    assert.equal((await capsule.run("sandbox.py", { args: ["2 + 2"] })).result, 4);
  } finally {
    await capsule.close();
  }
});

test("the worker killed under the client: the next call works", async () => {
  const dir = project();
  const capsule = new Capsule({ cwd: dir });
  try {
    await capsule.run("sleeper.py", { args: [0] });
    const first = capsule.workerPid;
    const call = capsule.run("sleeper.py", { args: [30] });
    await sleep(1500);
    process.kill(first, "SIGKILL");
    await assert.rejects(call, (error) => error instanceof WorkerError && /SIGKILL/.test(error.message));
    assert.equal((await capsule.run("sandbox.py", { args: ["40 + 2"] })).result, 42);
    assert.notEqual(capsule.workerPid, first);
  } finally {
    await capsule.close();
  }
});

test("the worker stopped (SIGSTOP): the call fails by its deadline", async () => {
  const dir = project();
  const capsule = new Capsule({ cwd: dir, grace: 1 });
  try {
    await capsule.run("sandbox.py", { args: ["1"] });
    const stopped = capsule.workerPid;
    process.kill(stopped, "SIGSTOP");
    const started = Date.now();
    try {
      await assert.rejects(capsule.run("sandbox.py", { args: ["2"], timeout: "1s" }), DeadlineExceeded);
    } finally {
      try {
        process.kill(stopped, "SIGCONT");
      } catch {}
    }
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(elapsed >= 2.5 && elapsed < 6, `gave up after ${elapsed} s`);
    assert.equal((await capsule.run("sandbox.py", { args: ["3"] })).result, 3);
    assert.notEqual(capsule.workerPid, stopped);
  } finally {
    await capsule.close();
  }
});

// ---- protocol 2: runCode, sessions, files, streaming -------------------------------------------

test("runCode in both languages", async () => {
  const capsule = new Capsule();
  try {
    const cell = await capsule.runCode("import statistics\nprint('hi')\nstatistics.mean([1, 2, 3, 4])");
    assert.ok(cell.success, JSON.stringify(cell.error));
    assert.deepEqual([cell.result, cell.format, cell.stdout], [2.5, "json", "hi\n"]);
    const js = await capsule.runCode("[1, 2, 3].map(x => x * 2)", { language: "javascript" });
    assert.deepEqual(js.result, [2, 4, 6]);
    const failed = await capsule.runCode("const x = 1;\nnull.boom", { language: "javascript" });
    assert.equal(failed.error.errorType, "task_error");
    const seen = [];
    const streamed = await capsule.runCode("for i in range(3): print(i, flush=True)", { onStdout: (t) => seen.push(t) });
    assert.equal(streamed.stdout, "0\n1\n2\n");
    assert.equal(seen.join(""), "0\n1\n2\n");
  } finally {
    await capsule.close();
  }
});

test("a session's workspace holds at most its disk limit", async () => {
  const capsule = new Capsule();
  try {
    const session = await capsule.createSession({ language: "javascript", disk: "64KB" });
    const cell = await session.runCode("const fs = await import('node:fs');\nfs.writeFileSync('/workspace/a.bin', 'x'.repeat(40000));\nlet code = 'written';\ntry { fs.writeFileSync('/workspace/b.bin', 'y'.repeat(40000)); } catch (e) { code = e.code; }\ncode");
    assert.equal(cell.result, "ENOSPC", JSON.stringify(cell.error));
    assert.equal((await session.runCode("fs.writeFileSync('/workspace/c.bin', 'z'.repeat(40000))")).error.errorType, "disk_limit");
  } finally {
    await capsule.close();
  }
});

test("a session with files", async () => {
  const capsule = new Capsule();
  try {
    const session = await capsule.createSession({ language: "javascript" });
    await session.files.write("data/in.json", JSON.stringify({ xs: [1, 2, 3] }));
    const cell = await session.runCode("const fs = await import('node:fs');\nconst data = JSON.parse(fs.readFileSync('/workspace/data/in.json', 'utf8'));\ndata.xs.length");
    assert.equal(cell.result, 3, JSON.stringify(cell.error));
    assert.equal((await session.runCode("data.xs.reduce((a, b) => a + b)")).result, 6);
    await session.runCode("fs.writeFileSync('/workspace/out.txt', 'done')");
    assert.equal(await session.files.readText("out.txt"), "done");
    const listed = (await session.files.list()).map((f) => `${f.type}:${f.path}`);
    for (const entry of ["dir:data", "file:data/in.json", "file:out.txt"]) assert.ok(listed.includes(entry), listed.join(","));
    await session.files.remove("out.txt");
    await assert.rejects(session.files.read("../etc/passwd"), (e) => e instanceof OperationError && e.errorType === "invalid_args");
    await session.reset();
    assert.equal((await session.runCode("data")).error.errorType, "task_error");
    const stuck = await session.runCode("for (;;) {}", { timeout: "300ms" });
    assert.equal(stuck.error.errorType, "timeout");
    assert.equal((await session.runCode("1")).error.errorType, "session_lost");
    await session[Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")]();
    assert.equal(session.closed, true);
  } finally {
    await capsule.close();
  }
});

test("aborting a cell cancels it in the worker", async () => {
  const capsule = new Capsule();
  try {
    const controller = new AbortController();
    const cell = capsule.runCode("import time\ntime.sleep(20)", { timeout: "60s", signal: controller.signal });
    await sleep(1000);
    assert.equal((await capsule.status()).running.length, 1);
    controller.abort();
    await assert.rejects(cell, { name: "AbortError" });
    const until = Date.now() + 5000;
    while ((await capsule.status()).running.length && Date.now() < until) await sleep(100);
    assert.deepEqual((await capsule.status()).running, []);
    assert.equal((await capsule.runCode("1 + 1")).result, 2);
  } finally {
    await capsule.close();
  }
});

test("200 concurrent runCode calls", async () => {
  const capsule = new Capsule();
  try {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => capsule.runCode(`${i} + 1`, { language: "javascript" })));
    assert.deepEqual(results.map((r) => r.result), Array.from({ length: 200 }, (_, i) => i + 1));
  } finally {
    await capsule.close();
  }
});
