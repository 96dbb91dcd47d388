"use strict";
/**
 * `Capsule`: the client over one long-lived `capsule worker`, started on first use and again
 * after it dies. Every call has a client-side deadline (its timeout plus `grace`): when it passes
 * the client pings the worker; a live worker is asked to cancel the call, a hung one is killed
 * (the next call starts a fresh one). Calls without a known timeout wait as long as pings answer.
 */
const fs = require("node:fs");
const path = require("node:path");
const { Builder, isSource } = require("./build.cjs");
const { findBinary } = require("./binary.cjs");
const { toSeconds, toText } = require("./duration.cjs");
const { DeadlineExceeded, OperationError, UnsupportedError, WorkerError } = require("./errors.cjs");
const { Result, failedEnvelope } = require("./result.cjs");
const { Session } = require("./session.cjs");
const { limits, strings } = require("./fields.cjs");
const { Worker } = require("./worker.cjs");

/** `run_code`'s default timeout in the worker (also announced by `hello`). */
const DEFAULT_CELL_TIMEOUT = 30;
/** How often a call with no known deadline checks that the worker still answers. */
const LIVENESS_INTERVAL = 30;
/** Requests the worker may hold beyond the client's bound, so `cancel` and pings are read. */
const CONTROL_HEADROOM = 4;
const asyncDispose = Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose");

/** A counting semaphore: `maxInFlight` calls on the worker at once. */
class Slots {
  constructor(size) {
    this.free = size;
    this.waiting = [];
  }
  async acquire() {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise((resolve) => this.waiting.push(resolve));
  }
  release() {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

function abortError(signal) {
  const reason = signal.reason;
  if (reason instanceof Error) return reason;
  const error = new Error("the call was aborted");
  error.name = "AbortError";
  return error;
}

class Capsule {
  /**
   * @param {object} [options] `binary`, `trust` (keys or .pub files), `allowUnsigned`,
   *   `maxInFlight` (16), `requestTimeout`, `grace` (seconds, 5), `cwd`, `env`.
   */
  constructor(options = {}) {
    const { binary, trust, allowUnsigned = false, maxInFlight = 16, requestTimeout, grace = 5, cwd, env } = options;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 250) {
      throw new RangeError(`invalid \`maxInFlight\`: ${maxInFlight}; expected 1 to 250`);
    }
    if (!(typeof grace === "number" && grace > 0)) throw new RangeError(`invalid \`grace\`: ${grace}; it must be positive`);
    this.binaryOption = binary;
    this.trust = strings(trust, "trust");
    this.allowUnsigned = Boolean(allowUnsigned);
    this.maxInFlight = maxInFlight;
    this.requestTimeout = requestTimeout === undefined ? null : toSeconds(requestTimeout, "requestTimeout");
    this.requestTimeoutText = requestTimeout === undefined ? null : toText(requestTimeout, "requestTimeout");
    this.grace = grace;
    this.cwd = path.resolve(cwd ?? process.cwd());
    this.env = env;
    this.ids = 0;
    this.slots = new Slots(maxInFlight);
    this.worker = null;
    this.starting = null;
    this.generation = 0;
    this.builder = null;
    this.closed = false;
  }

  nextId() {
    this.ids += 1;
    return this.ids;
  }

  /** The running worker's process id (null before the first call or after it died). */
  get workerPid() {
    return this.worker?.alive ? this.worker.pid : null;
  }

  /** The running worker's protocol version (0 before it started). */
  get protocol() {
    return this.worker?.protocol ?? 0;
  }

  getBuilder() {
    this.builder ??= new Builder(findBinary(this.binaryOption), this.env);
    return this.builder;
  }

  /** Starts the worker now (otherwise the first call does); resolves to it. */
  start() {
    if (this.closed) return Promise.reject(new WorkerError("this client is closed"));
    if (this.worker?.alive) return Promise.resolve(this.worker);
    this.starting ??= this.spawn().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  async spawn() {
    const builder = this.getBuilder();
    const argv = [builder.binary, "worker", "--max-in-flight", String(this.maxInFlight + CONTROL_HEADROOM), "--trust", await builder.ensureKey()];
    for (const key of this.trust) argv.push("--trust", key);
    if (this.allowUnsigned) argv.push("--allow-unsigned");
    if (this.requestTimeoutText) argv.push("--request-timeout", this.requestTimeoutText);
    this.generation += 1;
    const worker = new Worker(argv, { cwd: this.cwd, env: this.env, generation: this.generation });
    const answer = await this.waitAlive(worker, worker.submit({ id: `hello-${this.nextId()}`, op: "hello" }), 60);
    if (answer === null) {
      worker.kill("the worker did not answer `hello` within 60 s");
      throw new WorkerError(`the worker did not answer \`hello\` within 60 s: ${worker.stderrTail()}`);
    }
    if ("protocol" in answer) worker.hello = answer;
    this.worker = worker;
    return worker;
  }

  /** Stops the worker: it finishes what is running, answers it, and exits. */
  async close() {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (worker?.alive) await worker.close();
  }

  [asyncDispose]() {
    return this.close();
  }

  /**
   * Runs a task of a bundle or of a task source (`.py`, `.js`, `.ts`...: built and cached
   * first). Options: `task`, `args`, `kwargs`, `timeout` (narrows the task's own), `onStdout`,
   * `onStderr` (given the task's output when it ends), `signal` (an AbortSignal that cancels it).
   */
  async run(bundleOrFile, options = {}) {
    const { task, args = [], kwargs, timeout, onStdout, onStderr, signal } = options;
    const file = path.resolve(this.cwd, String(bundleOrFile));
    if (path.extname(file) === ".wasm") {
      throw new TypeError(`\`${bundleOrFile}\` is a .wasm module; Capsule runs \`.capsule\` bundles or task sources (.py, .js, .ts)`);
    }
    if (!fs.existsSync(file)) throw new Error(`no such task file or bundle: \`${bundleOrFile}\``);
    if (!Array.isArray(args)) throw new TypeError(`\`args\` must be an array, got ${typeof args}`);
    if (kwargs !== undefined && (kwargs === null || typeof kwargs !== "object" || Array.isArray(kwargs))) {
      throw new TypeError("`kwargs` must be an object");
    }
    await this.start();
    const bundle = isSource(file) ? await this.getBuilder().bundle(file) : file;
    const message = { bundle, args };
    if (task !== undefined) message.task = String(task);
    if (kwargs && Object.keys(kwargs).length) message.kwargs = kwargs;
    let deadline = this.requestTimeout;
    if (timeout !== undefined) {
      message.timeout = toText(timeout);
      deadline = Math.min(toSeconds(timeout), deadline ?? Infinity);
    }
    // Today's worker refuses `stream` on task calls (the protocol document allows it): the
    // callbacks get the task's whole output when it ends.
    const answer = await this.call(message, deadline, null, signal);
    const result = envelopeResult(answer, false);
    if (onStdout && result.stdout) onStdout(result.stdout);
    if (onStderr && result.stderr) onStderr(result.stderr);
    return result;
  }

  /**
   * Runs `code` like a notebook cell in a fresh sandbox. Options: `language` ("python" or
   * "javascript"), `timeout`, `ram`, `compute`, `allowHosts`, `env`, `onStdout`, `onStderr`,
   * `signal`.
   */
  async runCode(code, options = {}) {
    if (typeof code !== "string") throw new TypeError(`\`code\` must be a string, got ${typeof code}`);
    const { language = "python", timeout, onStdout, onStderr, signal } = options;
    const message = { op: "run_code", language, code };
    limits(message, options);
    return this.cell(message, timeout, onStdout, onStderr, signal, null);
  }

  /**
   * Opens a live interpreter whose state persists across cells, with a `/workspace` reachable
   * through `session.files`. Options: `language`, `timeout`, `ram`, `compute`, `allowHosts`, `env`,
   * `disk` (what the workspace may hold, default 1GiB).
   */
  async createSession(options = {}) {
    const { language = "python", timeout, disk } = options;
    const message = { op: "session.open", language };
    limits(message, options);
    if (disk !== undefined) message.disk = String(disk);
    const worker = await this.start();
    const answer = await this.op(message, worker);
    return new Session(this, worker, String(answer.session), language, timeout === undefined ? null : toSeconds(timeout));
  }

  /** What the worker is doing (protocol 2). */
  async status() {
    return (await this.op({ op: "status" })).status ?? {};
  }

  // ---- shared with sessions --------------------------------------------------------------

  async cell(message, timeout, onStdout, onStderr, signal, defaultTimeout) {
    const worker = await this.start();
    if (worker.protocol < 2 || !worker.knows("run_code")) {
      throw new UnsupportedError(
        `this capsule worker does not know \`run_code\` (it speaks protocol ${worker.protocol}); install a capsule with worker protocol 2`,
      );
    }
    const defaults = worker.hello.defaults ?? {};
    let deadline = defaultTimeout ?? DEFAULT_CELL_TIMEOUT;
    if (timeout !== undefined) deadline = toSeconds(timeout);
    else if (defaultTimeout === null && defaults.timeout !== undefined) {
      try {
        deadline = toSeconds(defaults.timeout);
      } catch {
        // Keep the documented default.
      }
    }
    if (onStdout || onStderr) message.stream = true;
    const answer = await this.call(message, deadline, events(onStdout, onStderr), signal);
    return envelopeResult(answer, true);
  }

  /**
   * Sends a protocol-2 op that answers without an envelope; a refusal throws `OperationError`.
   * With `deadline` null it waits as long as the worker answers pings (session ops queue behind
   * the session's cells).
   */
  async op(message, worker = null, deadline = DEFAULT_CELL_TIMEOUT) {
    worker ??= await this.start();
    if (worker.protocol < 2 || !worker.knows(message.op)) {
      throw new UnsupportedError(`this capsule worker does not know \`${message.op}\` (protocol ${worker.protocol})`);
    }
    const answer = await this.call(message, deadline, null, undefined, worker);
    if (answer.error) throw new OperationError(String(answer.error.error_type ?? "internal"), String(answer.error.message ?? ""));
    return answer;
  }

  async call(message, deadline, onEvent, signal, worker = null) {
    if (signal?.aborted) throw abortError(signal);
    await this.slots.acquire();
    try {
      worker ??= await this.start();
      const id = this.nextId();
      message.id = id;
      const answer = worker.submit(message, onEvent);
      return await this.awaitAnswer(worker, id, answer, deadline, signal);
    } finally {
      this.slots.release();
    }
  }

  cancel(worker, id) {
    worker.forget(id);
    if (worker.protocol >= 2) worker.send({ id: `cancel-${this.nextId()}`, op: "cancel", target: id });
  }

  async awaitAnswer(worker, id, answer, deadline, signal) {
    const expires = deadline === null ? null : Date.now() + (deadline + this.grace) * 1000;
    let onAbort = null;
    const aborted = new Promise((_, reject) => {
      if (!signal) return;
      onAbort = () => {
        this.cancel(worker, id);
        reject(abortError(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
      for (;;) {
        const wait = expires === null ? LIVENESS_INTERVAL * 1000 : Math.max(0, expires - Date.now());
        const outcome = await race(answer, aborted, Math.min(wait, LIVENESS_INTERVAL * 1000));
        if (outcome.done) return outcome.value;
        if (!(await this.ping(worker))) {
          const reason = `the worker stopped answering (no answer to a ping within ${this.grace} s); it was killed and the next call starts a new one`;
          worker.kill(reason);
          throw new DeadlineExceeded(reason);
        }
        if (expires !== null && Date.now() >= expires) {
          this.cancel(worker, id);
          throw new DeadlineExceeded(`no answer within ${deadline} s + ${this.grace} s of grace; the worker is alive and the request was cancelled`);
        }
      }
    } finally {
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  /** Whether the worker still reads and answers (`hello`; protocol 1 answers it too). */
  async ping(worker) {
    const answer = worker.submit({ id: `ping-${this.nextId()}`, op: "hello" });
    return (await this.waitAlive(worker, answer, this.grace)) !== null;
  }

  async waitAlive(worker, answer, seconds) {
    const outcome = await race(answer, new Promise(() => {}), seconds * 1000);
    return outcome.done ? outcome.value : null;
  }
}

/** Settles with `{done: true, value}` when `answer` resolves, rejects when it (or `aborted`)
 * rejects, or `{done: false}` after `ms`. */
function race(answer, aborted, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
  });
  return Promise.race([answer.then((value) => ({ done: true, value })), aborted, timeout]).finally(() => clearTimeout(timer));
}

function events(onStdout, onStderr) {
  if (!onStdout && !onStderr) return null;
  return (event, data) => {
    if (event === "stdout") onStdout?.(data);
    else if (event === "stderr") onStderr?.(data);
  };
}

function envelopeResult(answer, cell) {
  if (answer.envelope && typeof answer.envelope === "object") return new Result(answer.envelope, cell);
  const error = answer.error ?? {};
  return new Result(failedEnvelope(error.error_type ?? "internal", error.message ?? "the worker answered without an envelope"), cell);
}

module.exports = { Capsule };
