"use strict";
/**
 * One `capsule worker` process: spawning it, writing requests, routing answers and events by
 * request id. When the process exits or breaks the protocol, every waiting request is rejected
 * with `WorkerError`. The process does not keep Node alive while nothing is in flight.
 */
const { spawn } = require("node:child_process");
const readline = require("node:readline");
const { WorkerError } = require("./errors.cjs");

/** How much of the worker's stderr is kept to explain why it died. */
const STDERR_TAIL = 8192;

class Worker {
  /** Starts `argv[0]` with `argv.slice(1)` (a `capsule worker` command line). */
  constructor(argv, { cwd, env, generation }) {
    this.generation = generation;
    this.hello = {};
    this.pending = new Map();
    this.dead = null;
    this.closing = false;
    this.stderr = "";
    this.child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    this.exited = new Promise((resolve) => this.child.once("close", (code, signal) => resolve({ code, signal })));
    this.child.once("error", (error) => this.fail(`cannot start \`${argv.join(" ")}\`: ${error.message}`));
    this.child.stdin.on("error", (error) => this.fail(`cannot write to the worker: ${error.message}`));
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_TAIL);
    });
    const lines = readline.createInterface({ input: this.child.stdout, crlfDelay: Infinity });
    lines.on("line", (line) => this.route(line));
    this.exited.then(({ code, signal }) => {
      this.fail(`the worker exited (${signal ? `killed by ${signal}` : `exit status ${code}`})`);
    });
    this.idle();
  }

  /** The worker's process id. */
  get pid() {
    return this.child.pid;
  }

  /** False once the process exited or was given up on. */
  get alive() {
    return this.dead === null;
  }

  /** The protocol version `hello` reported (1 when the worker did not know `hello`). */
  get protocol() {
    return Number(this.hello.protocol ?? 1);
  }

  /** Whether the worker announced `op`. */
  knows(op) {
    return (this.hello.ops ?? []).includes(op);
  }

  /** Writes `message` (with a unique `id`) and returns the promise of its answer. */
  submit(message, onEvent = null) {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject, onEvent });
      this.busy();
      this.write(message);
    });
  }

  /** Writes `message` without waiting for an answer (a `cancel`). */
  send(message) {
    if (!this.dead) this.write(message);
  }

  /** Stops routing the answer of `id` (its caller went away). */
  forget(id) {
    this.pending.delete(id);
    if (this.pending.size === 0) this.idle();
  }

  write(message) {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  route(line) {
    let answer;
    try {
      answer = JSON.parse(line);
    } catch {
      this.kill(`the worker wrote a line that is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (answer === null || typeof answer !== "object" || !("id" in answer)) return;
    const entry = this.pending.get(answer.id);
    if (!entry) return;
    if ("event" in answer) {
      if (entry.onEvent) {
        try {
          entry.onEvent(String(answer.event), String(answer.data ?? ""));
        } catch {
          // A user callback must not break the reader.
        }
      }
      return;
    }
    this.forget(answer.id);
    entry.resolve(answer);
  }

  /** The last lines the worker wrote on stderr. */
  stderrTail() {
    return this.stderr.trim();
  }

  fail(reason) {
    if (this.dead) return;
    const tail = this.stderrTail();
    this.dead = new WorkerError(tail ? `${reason}; its stderr ends with:\n${tail}` : reason);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) entry.reject(this.dead);
    this.signal("SIGKILL");
    this.idle();
  }

  /** Kills the process; every waiting request is rejected with `reason`. */
  kill(reason) {
    this.signal("SIGKILL");
    this.fail(reason);
  }

  signal(name) {
    if (this.child.exitCode !== null || this.child.signalCode !== null || !this.child.pid) return;
    try {
      process.kill(-this.child.pid, name);
    } catch {
      try {
        this.child.kill(name);
      } catch {
        // Already gone.
      }
    }
  }

  /** Closes stdin (the worker answers what runs and exits); kills it after `timeoutMs`. */
  async close(timeoutMs = 10000) {
    this.closing = true;
    this.busy();
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill("the worker did not exit after its input was closed"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    this.fail("the worker was closed");
  }

  // While nothing is in flight, the worker must not keep Node running.
  busy() {
    this.child.ref();
    this.child.stdout.ref?.();
    this.child.stderr.ref?.();
    this.child.stdin.ref?.();
  }

  idle() {
    if (this.closing) return;
    this.child.unref();
    this.child.stdout.unref?.();
    this.child.stderr.unref?.();
    this.child.stdin.unref?.();
  }
}

module.exports = { Worker };
