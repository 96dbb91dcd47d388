// Capsule's in-guest SDK for JavaScript tasks, loaded as the module "capsule" (and its alias
// "@capsule-run/sdk"). User code:
//
//   import { task } from "capsule";
//   export const main = task({ name: "main", compute: "LOW", ram: "64MB", timeout: "5s" },
//                            (n) => { let s = 0; for (let i = 0; i < n; i++) s += i * i; return s; });
//
// The module's top level runs once, at build time, inside the snapshot; tasks run later, each in a
// fresh instance of it. The host-facing half (`finalize`, `run`) is called by the Rust guest only.

// `host` is deleted from globalThis by node.js, which is evaluated next.
const host = globalThis.__capsule_host;

const TASK = Symbol("capsule.task");

// camelCase option -> the snake_case key of the task table (the compiler validates the values).
const OPTIONS = {
  compute: "compute",
  ram: "ram",
  timeout: "timeout",
  maxRetries: "max_retries",
  allowedFiles: "allowed_files",
  allowedHosts: "allowed_hosts",
  envVariables: "env_variables",
  disk: "disk",
};

const registry = [];
const tasksByName = new Map();
let phase = "init";

// ---- console and process ----------------------------------------------------------------------

function show(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ? `${value.name}: ${value.message}\n${value.stack}` : String(value);
  try {
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  } catch {
    return String(value);
  }
}

// At build time the task table owns stdout, so everything the top level prints goes to stderr.
const writer = (fd) => (...values) => host.write(phase === "init" ? 2 : fd, values.map(show).join(" ") + "\n");
globalThis.console = {
  log: writer(1),
  info: writer(1),
  debug: writer(1),
  warn: writer(2),
  error: writer(2),
};
// Node's raw streams: text as given, no newline added.
const rawWriter = (fd) => ({
  write(text) {
    host.write(phase === "init" ? 2 : fd, String(text));
    return true;
  },
});
globalThis.process = { env: {}, stdout: rawWriter(1), stderr: rawWriter(2) };

// Math.random: the interpreter's own state was seeded once, at init, and would repeat in every
// run of the snapshot; this xorshift128 generator is reseeded from WASI randomness at every run.
const randomState = new Uint32Array(4);
function reseed() {
  const seed = host.randomWords();
  for (let i = 0; i < 4; i++) randomState[i] = seed[i] >>> 0;
  if ((randomState[0] | randomState[1] | randomState[2] | randomState[3]) === 0) randomState[0] = 1;
}
function nextWord() {
  let t = randomState[3];
  const s = randomState[0];
  randomState[3] = randomState[2];
  randomState[2] = randomState[1];
  randomState[1] = s;
  t ^= t << 11;
  t ^= t >>> 8;
  randomState[0] = t ^ s ^ (s >>> 19);
  return randomState[0];
}
// 53 random bits, as V8 does: 27 from one word and 26 from the next.
Math.random = function random() {
  return ((nextWord() >>> 5) * 67108864 + (nextWord() >>> 6)) / 9007199254740992;
};

// ---- files (directories granted at exec time) --------------------------------------------------

/** Reads a UTF-8 file from a directory the task was granted. */
export function readTextFile(path) {
  return host.readTextFile(String(path));
}

/** Writes (creates or replaces) a UTF-8 file in a directory the task was granted read-write. */
export function writeTextFile(path, text) {
  host.writeTextFile(String(path), String(text));
}

/** Names of the entries of a granted directory, sorted. */
export function readDir(path) {
  return host.readDir(String(path));
}

/**
 * Waits `ms` milliseconds. The task is single-threaded, so nothing else runs meanwhile; the
 * task's timeout still applies.
 */
// The code interpreter's cells: evaluates `code` as a global script in which `await` may appear
// at the top level and resolves to its completion value (the value of its last expression
// statement). Its declarations stay global; `filename` names it in stack traces.
export async function evaluateCell(code, filename = "<cell>") {
  const completion = await host.evalAsync(String(code), String(filename));
  return completion !== null && typeof completion === "object" && "value" in completion
    ? completion.value
    : completion;
}

export function sleep(ms) {
  host.sleep(Number(ms));
  return Promise.resolve();
}

// ---- fetch (through the host, which checks allowed_hosts on every request and redirect) --------

/** A request went (or was redirected) to a host the task's `allowedHosts` does not allow. */
export class HostDeniedError extends Error {
  constructor(message) {
    super(message);
    this.name = "HostDeniedError";
  }
}

class Headers {
  constructor(pairs = []) {
    this.pairs = pairs.map(([name, value]) => [String(name).toLowerCase(), String(value)]);
  }
  get(name) {
    const found = this.pairs.filter(([key]) => key === String(name).toLowerCase()).map(([, value]) => value);
    return found.length ? found.join(", ") : null;
  }
  has(name) {
    return this.get(name) !== null;
  }
  entries() {
    return this.pairs[Symbol.iterator]();
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  forEach(callback) {
    for (const [name, value] of this.pairs) callback(value, name, this);
  }
}

class Response {
  constructor(answer) {
    this.status = answer.status;
    this.ok = answer.status >= 200 && answer.status < 300;
    this.statusText = "";
    this.url = answer.url;
    this.redirected = answer.redirected;
    this.headers = new Headers(answer.headers);
    this.body_ = answer.body ?? "";
  }
  async text() {
    return this.body_;
  }
  async json() {
    return JSON.parse(this.body_);
  }
}

function headerPairs(headers) {
  if (!headers) return [];
  if (headers instanceof Headers) return headers.pairs;
  if (Array.isArray(headers)) return headers.map(([name, value]) => [String(name), String(value)]);
  return Object.entries(headers).map(([name, value]) => [name, String(value)]);
}

/**
 * `fetch(url, { method, headers, body })` as in browsers and Node (string bodies; responses are
 * read as text). A host the task may not reach rejects with `HostDeniedError`; a failed request
 * with `TypeError`, as `fetch` does.
 */
globalThis.fetch = async function fetch(input, init = {}) {
  const url = typeof input === "string" ? input : String(input?.url ?? input);
  const request = { method: String(init.method ?? "GET"), url, headers: headerPairs(init.headers) };
  if (init.body !== undefined && init.body !== null) request.body = String(init.body);
  const outcome = host.httpFetch(JSON.stringify(request));
  if (outcome.ok !== undefined) return new Response(JSON.parse(outcome.ok));
  if (outcome.error_type === "host_denied") throw new HostDeniedError(outcome.message);
  throw new TypeError(outcome.message);
};

// ---- tasks --------------------------------------------------------------------------------------

/**
 * Registers `fn` as a Capsule task and returns a function that calls it.
 * Options: name, compute ("LOW" | "MEDIUM" | "HIGH" | fuel count), ram ("64MB"), timeout ("30s"),
 * maxRetries, allowedFiles, allowedHosts, envVariables, disk ("100MB": bytes it may add to its
 * writable directories).
 */
export function task(options, fn) {
  if (typeof options === "function" && fn === undefined) {
    fn = options;
    options = {};
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError("task(options, fn): options must be an object");
  }
  if (typeof fn !== "function") throw new TypeError("task(options, fn): fn must be a function");
  const unknown = Object.keys(options).filter((key) => key !== "name" && !(key in OPTIONS));
  if (unknown.length) {
    throw new TypeError(
      `task() got unknown option(s) ${unknown.join(", ")}; accepted: name, ${Object.keys(OPTIONS).join(", ")}`,
    );
  }
  if (options.name !== undefined && typeof options.name !== "string") {
    throw new TypeError("task({ name }) must be a string");
  }
  const config = {};
  for (const [key, value] of Object.entries(options)) {
    if (key !== "name") config[OPTIONS[key]] = value === undefined ? null : value;
  }
  const entry = { fn, name: options.name, exportName: null, config };
  // While a task runs, calling another task runs it as a sub-task: in a fresh instance, under
  // the limits the manifest records for it (narrowed by the caller's). Arguments and the result
  // travel as JSON. At build time (the module's top level) it is a plain call.
  const wrapper = function (...args) {
    if (phase !== "run") return fn.apply(this, args);
    const outcome = host.callTask(entry.name ?? entry.exportName, JSON.stringify({ args, kwargs: {} }));
    if (outcome.ok !== undefined) return JSON.parse(outcome.ok);
    throw new TaskError(outcome.error_type, outcome.message, outcome.traceback);
  };
  Object.defineProperty(wrapper, TASK, { value: entry });
  Object.defineProperty(wrapper, "name", { value: options.name ?? fn.name });
  registry.push(entry);
  return wrapper;
}

/** Build time: binds tasks to their exports and returns the task table (JSON). */
export function finalize(namespace, warnings = []) {
  for (const [key, value] of Object.entries(namespace)) {
    const entry = value && value[TASK];
    if (entry && entry.exportName === null) entry.exportName = key;
  }
  const tasks = [];
  for (const entry of registry) {
    const name = entry.name ?? entry.exportName;
    if (name === null || name === undefined) {
      throw new Error("a task is neither named nor exported: give it { name } or export it");
    }
    if (tasksByName.has(name)) throw new Error(`two tasks are named "${name}"; task names must be unique`);
    tasksByName.set(name, entry);
    tasks.push({ name, export: entry.exportName, config: entry.config });
  }
  return JSON.stringify(warnings.length ? { language: "javascript", tasks, warnings } : { language: "javascript", tasks });
}

/** A sub-task failed; `errorType` says how (`timeout`, `permission_denied`, `task_error`...). */
export class TaskError extends Error {
  constructor(errorType, message, traceback = "") {
    super(message);
    this.name = "TaskError";
    this.errorType = errorType;
    this.traceback = traceback;
  }
}

function failure(errorType, message, traceback = "") {
  return { error_type: errorType, message, traceback };
}

function describe(error) {
  if (error instanceof Error) return error.message ? `${error.name}: ${error.message}` : error.name;
  return `uncaught ${show(error)}`;
}

/**
 * Run time: runs one task. `argsJson` is `{"args": [...], "kwargs": {...}}`; kwargs, when given, are
 * passed as one trailing object argument. Never throws: returns `{ok: json}` or a failure.
 */
export async function run(name, argsJson) {
  phase = "run";
  reseed();
  process.env = host.environ();
  let args;
  let kwargs;
  try {
    const request = JSON.parse(argsJson);
    args = request.args ?? [];
    kwargs = request.kwargs ?? {};
    if (!Array.isArray(args) || kwargs === null || typeof kwargs !== "object" || Array.isArray(kwargs)) {
      throw new TypeError("`args` must be an array and `kwargs` an object");
    }
  } catch (error) {
    return failure("invalid_args", `arguments are not valid: ${describe(error)}`);
  }
  const entry = tasksByName.get(name);
  if (entry === undefined) {
    return failure("internal", `no task named \`${name}\` (tasks: ${[...tasksByName.keys()].join(", ") || "none"})`);
  }
  const callArgs = Object.keys(kwargs).length ? [...args, kwargs] : args;
  let result;
  try {
    result = await entry.fn(...callArgs);
  } catch (error) {
    const machinery = globalThis.__capsule_modules;
    const exitCode = error instanceof Error ? error[machinery.EXIT] : undefined;
    if (exitCode === 0) return { ok: "null" };
    if (exitCode !== undefined) return failure("task_error", `the task called process.exit(${exitCode})`);
    const stack = machinery.mapStack(error instanceof Error && error.stack ? `${describe(error)}\n${error.stack}` : describe(error));
    const name = error instanceof Error ? error.name : "";
    const kind = name === "HostDeniedError" ? "host_denied" : name === "PermissionError" ? "permission_denied" : "task_error";
    return failure(kind, describe(error), stack);
  }
  let json;
  try {
    json = result === undefined ? "null" : JSON.stringify(result);
  } catch (error) {
    return failure("task_error", `task \`${name}\` returned a value that is not JSON-serializable: ${describe(error)}`);
  }
  if (json === undefined) {
    return failure("task_error", `task \`${name}\` returned a value that is not JSON-serializable: ${typeof result}`);
  }
  return { ok: json };
}
