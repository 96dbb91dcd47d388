"use strict";
/** Sessions: a live interpreter in the worker whose state persists across cells, and its files. */
const { OperationError } = require("./errors.cjs");
const { limits } = require("./fields.cjs");
const { Result, failedEnvelope } = require("./result.cjs");

const asyncDispose = Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose");

/**
 * A live interpreter with its own `/workspace`. Cells run one at a time in arrival order; a cell
 * that hits a limit or is cancelled ends the session (its next call gives `session_lost`).
 */
class Session {
  constructor(client, worker, id, language, defaultTimeout) {
    this.client = client;
    this.worker = worker;
    this.id = id;
    this.language = language;
    this.defaultTimeout = defaultTimeout;
    this.closed = false;
    this.files = new Files(this);
  }

  unusable() {
    if (this.closed) return "was closed";
    if (!this.worker.alive) return "was lost: its worker exited";
    return null;
  }

  /** Runs a cell; options `timeout`, `compute` (for this cell), `onStdout`, `onStderr`, `signal`. */
  async runCode(code, options = {}) {
    const why = this.unusable();
    if (why) return new Result(failedEnvelope("session_lost", `session \`${this.id}\` ${why}`), true);
    if (typeof code !== "string") throw new TypeError(`\`code\` must be a string, got ${typeof code}`);
    const { timeout, compute, onStdout, onStderr, signal } = options;
    const message = { op: "run_code", session: this.id, code };
    limits(message, { timeout, compute });
    return this.client.cell(message, timeout, onStdout, onStderr, signal, this.defaultTimeout);
  }

  /** Sends `op` for this session; refusals throw `OperationError`. */
  async op(op, fields = {}) {
    const why = this.unusable();
    if (why) throw new OperationError("session_lost", `session \`${this.id}\` ${why}`);
    // Session ops wait for the session's running and queued cells, which have their own
    // deadlines: only the worker's liveness bounds them.
    return this.client.op({ op, session: this.id, ...fields }, this.worker, null);
  }

  /** Replaces the interpreter by a fresh one; the workspace and its files stay. */
  async reset() {
    await this.op("session.reset");
  }

  /** Ends the session and deletes its workspace (again: no effect). */
  async close() {
    if (this.closed) return;
    this.closed = true;
    if (!this.worker.alive) return;
    try {
      await this.client.op({ op: "session.close", session: this.id }, this.worker, null);
    } catch (error) {
      if (!(error instanceof OperationError && error.errorType === "session_lost")) throw error;
    }
  }

  [asyncDispose]() {
    return this.close();
  }
}

/** The session's `/workspace` from the host; paths are relative to it. */
class Files {
  constructor(session) {
    this.session = session;
  }

  /** Writes `data` (a string is UTF-8) to `path`, creating directories; resolves to the size. */
  async write(path, data) {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
    const answer = await this.session.op("files.write", { path, data: bytes.toString("base64") });
    return Number(answer.written ?? bytes.length);
  }

  /** The bytes of `path`, as a Buffer (the worker returns at most 64 MiB). */
  async read(path) {
    const answer = await this.session.op("files.read", { path });
    return Buffer.from(String(answer.data ?? ""), "base64");
  }

  /** The text of `path` (UTF-8). */
  async readText(path) {
    return (await this.read(path)).toString("utf8");
  }

  /** Everything under `path` (default: the workspace), recursively, sorted: `{path, type, size}`
   * (`type` is `file`, `dir` or `symlink`, not followed). */
  async list(path) {
    const answer = await this.session.op("files.list", path === undefined ? {} : { path });
    return (answer.files ?? []).map((f) => ({ path: String(f.path), type: String(f.type), size: Number(f.size ?? 0) }));
  }

  /** Deletes `path`. */
  async remove(path) {
    await this.session.op("files.remove", { path });
  }
}

module.exports = { Session, Files };
