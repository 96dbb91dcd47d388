// Capsule's Node.js layer for the QuickJS guest, evaluated once at build time after the SDK (as the
// module "capsule:node"): the event loop (timers, immediates, process.nextTick), `require` for
// CommonJS modules of the module map, the Node built-ins a sandboxed task may use, and the web
// globals QuickJS lacks. Hashing, UTF-8 and file access call into Rust (native.rs) through `host`.
// The Rust side reaches this file through `globalThis.__capsule_modules` (non-enumerable).

const host = globalThis.__capsule_host;
delete globalThis.__capsule_host;

// ---- event loop ---------------------------------------------------------------------------------

// During pre-initialization (Wizer) the clock is frozen: timers fire in order without sleeping, on a
// virtual clock. At run time the loop sleeps (WASI poll_oneoff), which counts against `timeout`.
let initPhase = true;
let virtualMs = 0;
const loopNow = () => performance.now() + virtualMs;
const MAX_DELAY = 2147483647;

let sequence = 0;
const timers = new Map();
const immediates = [];
const ticks = [];

class Timeout {
  constructor(fn, args, ms, repeat) {
    this._fn = fn;
    this._args = args;
    this._ms = ms;
    this._repeat = repeat;
    this._id = ++sequence;
    this._seq = this._id;
    this._when = loopNow() + ms;
    this._ref = true;
  }
  ref() {
    this._ref = true;
    return this;
  }
  unref() {
    this._ref = false;
    return this;
  }
  hasRef() {
    return this._ref;
  }
  refresh() {
    this._when = loopNow() + this._ms;
    this._seq = ++sequence;
    return this;
  }
  close() {
    clearTimeout(this);
    return this;
  }
  [Symbol.toPrimitive]() {
    return this._id;
  }
}

function delay(ms) {
  ms = Number(ms);
  return ms >= 1 && ms <= MAX_DELAY ? ms : 1;
}

function checkCallback(fn) {
  if (typeof fn !== "function") {
    const error = new TypeError(`The "callback" argument must be of type function. Received ${typeof fn}`);
    error.code = "ERR_INVALID_ARG_TYPE";
    throw error;
  }
}

function setTimeout(fn, ms, ...args) {
  checkCallback(fn);
  const timer = new Timeout(fn, args, delay(ms), false);
  timers.set(timer._id, timer);
  return timer;
}

function setInterval(fn, ms, ...args) {
  checkCallback(fn);
  const timer = new Timeout(fn, args, delay(ms), true);
  timers.set(timer._id, timer);
  return timer;
}

function clearTimeout(timer) {
  if (timer === null || timer === undefined) return;
  timers.delete(typeof timer === "object" ? timer._id : Number(timer));
}

class Immediate {
  constructor(fn, args) {
    this._fn = fn;
    this._args = args;
    this._cleared = false;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
  hasRef() {
    return true;
  }
}

function setImmediate(fn, ...args) {
  checkCallback(fn);
  const immediate = new Immediate(fn, args);
  immediates.push(immediate);
  return immediate;
}

function clearImmediate(immediate) {
  if (immediate instanceof Immediate) immediate._cleared = true;
}

function nextTick(fn, ...args) {
  checkCallback(fn);
  ticks.push([fn, args]);
}

// Runs the process.nextTick queue (including ticks queued meanwhile); true if any ran.
function runTicks() {
  if (ticks.length === 0) return false;
  while (ticks.length) {
    const [fn, args] = ticks.shift();
    fn(...args);
  }
  return true;
}

function fire(timer) {
  if (timer._repeat) {
    timer._when = loopNow() + timer._ms;
    timer._seq = ++sequence;
  } else {
    timers.delete(timer._id);
  }
  timer._fn(...timer._args);
}

// Node's loop phases, one callback per call (the Rust side drains nextTicks and promise jobs after
// each): a task starts like an I/O callback, so the check phase (immediates) comes first, then the
// timers phase (timers due when it starts, in order); with nothing runnable, sleep until the next
// timer. False when nothing is scheduled.
let batch = [];
let nextPhase = "check";

function earliestTimer() {
  let next = null;
  for (const timer of timers.values()) {
    if (next === null || timer._when < next._when || (timer._when === next._when && timer._seq < next._seq)) next = timer;
  }
  return next;
}

function startPhase() {
  if (nextPhase === "check") {
    nextPhase = "timers";
    batch = immediates.splice(0).map((immediate) => () => {
      if (immediate._cleared) return false;
      immediate._fn(...immediate._args);
      return true;
    });
  } else {
    nextPhase = "check";
    const now = loopNow();
    const due = [...timers.values()].filter((timer) => timer._when <= now);
    due.sort((a, b) => a._when - b._when || a._seq - b._seq);
    batch = due.map((timer) => () => {
      if (!timers.has(timer._id) || timer._when > now) return false;
      fire(timer);
      return true;
    });
  }
}

function runBatch() {
  while (batch.length) if (batch.shift()()) return true;
  return false;
}

function turn() {
  if (runBatch()) return true;
  for (let phases = 0; phases < 2; phases++) {
    startPhase();
    if (runBatch()) return true;
  }
  const next = earliestTimer();
  if (next === null) return false;
  const wait = next._when - loopNow();
  if (wait > 0) {
    if (initPhase) virtualMs += wait;
    else host.sleep(wait);
  }
  nextPhase = "timers";
  startPhase();
  return runBatch() || turn();
}

// The module's top level is done: what it left scheduled does not survive into the snapshot.
function endInit() {
  initPhase = false;
  timers.clear();
  immediates.length = 0;
  ticks.length = 0;
  batch = [];
  nextPhase = "check";
}

// ---- randomness consumed at build time -----------------------------------------------------------

// A value drawn at build time is frozen into the snapshot and shared by every run: worth a warning.
const randomUses = [];
function noteRandom(api) {
  if (!initPhase || randomUses.length >= 3) return;
  const frames = (new Error().stack ?? "").split("\n").map((line) => line.trim()).filter((line) => line.startsWith("at "));
  const user = frames.find((line) => !line.includes("capsule:node") && !line.includes("(capsule:")) ?? "";
  const place = /\(([^()]+)\)$/.exec(user)?.[1] ?? user.replace(/^at /, "");
  randomUses.push(`${api} at ${mapStack(place) || "the top level"}`);
}
{
  const random = Math.random;
  Math.random = function random_() {
    noteRandom("Math.random()");
    return random();
  };
  Object.defineProperty(Math.random, "name", { value: "random" });
}
function initWarnings() {
  if (randomUses.length === 0) return [];
  return [
    `the module's top level consumed randomness at build time (${randomUses.join("; ")}): those values are frozen into the snapshot and repeat in every run; draw them inside the task instead`,
  ];
}

// ---- small helpers ------------------------------------------------------------------------------

function codedError(Type, code, message) {
  const error = new Type(message);
  error.code = code;
  return error;
}

function notSupported(what) {
  return codedError(Error, "ERR_NOT_SUPPORTED", `${what} is not supported in the Capsule sandbox`);
}

// ---- util.format / inspect ----------------------------------------------------------------------

const inspectCustom = Symbol.for("nodejs.util.inspect.custom");
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function quoteString(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  const escaped = text.replace(/[\\\n\r\t\b\f\v]/g, (c) => ({ "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\v": "\\v" })[c]);
  return quote + (quote === "'" ? escaped.replace(/'/g, "\\'") : escaped) + quote;
}

function formatKey(key) {
  if (typeof key === "symbol") return `[${key.toString()}]`;
  return IDENTIFIER.test(key) ? key : quoteString(key);
}

function constructorName(value) {
  try {
    const proto = Object.getPrototypeOf(value);
    if (proto === null) return "[Object: null prototype]";
    const name = proto.constructor && proto.constructor.name;
    return typeof name === "string" ? name : "";
  } catch {
    return "";
  }
}

function inspect(value, options = {}) {
  const opts = typeof options === "object" && options !== null ? options : {};
  const depth = opts.depth === undefined ? 2 : opts.depth === null ? Infinity : opts.depth;
  const seen = [];
  return inspectValue(value, depth, 0, seen, true);
}
inspect.custom = inspectCustom;
inspect.defaultOptions = { depth: 2 };

function inspectValue(value, depth, level, seen, top) {
  switch (typeof value) {
    case "string":
      return top ? value : quoteString(value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
    case "undefined":
      return String(value);
    case "symbol":
      return value.toString();
    case "function": {
      const isClass = Function.prototype.toString.call(value).startsWith("class");
      const keys = Object.keys(value);
      const base = isClass ? `[class ${value.name || "(anonymous)"}]` : `[Function: ${value.name || "(anonymous)"}]`;
      if (keys.length === 0 || level > depth) return base;
      return inspectObject(value, depth, level, seen, base + " ");
    }
  }
  if (value === null) return "null";
  if (typeof value[inspectCustom] === "function") {
    const custom = value[inspectCustom](depth - level, { depth }, inspect);
    return typeof custom === "string" ? custom : inspectValue(custom, depth, level, seen, false);
  }
  if (seen.includes(value)) return "[Circular *1]";
  if (value instanceof Error) {
    const stack = value.stack ? `${value.name}: ${value.message}\n${value.stack}`.trimEnd() : `${value.name}: ${value.message}`;
    return level > 0 ? `[${stack}]` : stack;
  }
  if (value instanceof Date) return isNaN(value) ? "Invalid Date" : value.toISOString();
  if (value instanceof RegExp) return String(value);
  if (value instanceof Promise) return "Promise { <unknown> }";
  if (value instanceof WeakMap) return "WeakMap { <items unknown> }";
  if (value instanceof WeakSet) return "WeakSet { <items unknown> }";
  if (value instanceof Number || value instanceof String || value instanceof Boolean) {
    return `[${constructorName(value)}: ${inspectValue(value.valueOf(), depth, level, seen, false)}]`;
  }
  if (level > depth) {
    return Array.isArray(value) ? "[Array]" : `[${constructorName(value) || "Object"}]`;
  }
  seen.push(value);
  try {
    if (Array.isArray(value)) {
      const items = [];
      for (let i = 0; i < value.length && i < 100; i++) {
        items.push(i in value ? inspectValue(value[i], depth, level + 1, seen, false) : "<empty item>");
      }
      if (value.length > 100) items.push(`... ${value.length - 100} more items`);
      return wrapList(items, "[", "]", level);
    }
    if (value instanceof Map) {
      const items = [...value].map(([k, v]) => `${inspectValue(k, depth, level + 1, seen, false)} => ${inspectValue(v, depth, level + 1, seen, false)}`);
      return wrapList(items, `Map(${value.size}) {`, "}", level);
    }
    if (value instanceof Set) {
      const items = [...value].map((v) => inspectValue(v, depth, level + 1, seen, false));
      return wrapList(items, `Set(${value.size}) {`, "}", level);
    }
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
      const name = value instanceof Buffer ? "Buffer" : constructorName(value);
      if (name === "Buffer") {
        const hex = [...value.subarray(0, 50)].map((b) => b.toString(16).padStart(2, "0"));
        return `<Buffer${hex.length ? " " + hex.join(" ") : ""}${value.length > 50 ? ` ... ${value.length - 50} more bytes` : ""}>`;
      }
      const items = [...value.subarray(0, 100)].map((v) => inspectValue(v, depth, level + 1, seen, false));
      return wrapList(items, `${name}(${value.length}) [`, "]", level);
    }
    if (value instanceof ArrayBuffer) return `ArrayBuffer { byteLength: ${value.byteLength} }`;
    const name = constructorName(value);
    return inspectObject(value, depth, level, seen, name && name !== "Object" ? `${name} ` : "");
  } finally {
    seen.pop();
  }
}

function inspectObject(value, depth, level, seen, prefix) {
  const keys = [...Object.keys(value), ...Object.getOwnPropertySymbols(value).filter((s) => Object.getOwnPropertyDescriptor(value, s)?.enumerable)];
  if (keys.length === 0) return prefix === "" ? "{}" : `${prefix}{}`;
  const items = keys.map((key) => {
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    const shown = descriptor && (descriptor.get || descriptor.set) && !("value" in descriptor)
      ? descriptor.get && descriptor.set ? "[Getter/Setter]" : descriptor.get ? "[Getter]" : "[Setter]"
      : inspectValue(value[key], depth, level + 1, seen, false);
    return `${formatKey(key)}: ${shown}`;
  });
  return wrapList(items, `${prefix}{`, "}", level);
}

function wrapList(items, open, close, level) {
  if (items.length === 0) return `${open}${close}`;
  const oneLine = `${open} ${items.join(", ")} ${close}`;
  if (oneLine.length <= 72 && !items.some((item) => item.includes("\n"))) return oneLine;
  const indent = "  ".repeat(level + 1);
  return `${open}\n${items.map((item) => indent + item.replace(/\n/g, "\n" + indent)).join(",\n")}\n${"  ".repeat(level)}${close}`;
}

function format(...args) {
  if (args.length === 0) return "";
  const first = args[0];
  let rest = 1;
  let out = "";
  if (typeof first === "string") {
    out = first.replace(/%([sdifjoOc%])/g, (match, spec) => {
      if (spec === "%") return "%";
      if (rest >= args.length) return match;
      const arg = args[rest++];
      switch (spec) {
        case "s":
          return typeof arg === "string" ? arg : typeof arg === "bigint" ? `${arg}n` : typeof arg === "object" && arg !== null ? inspect(arg, { depth: 1 }) : String(arg);
        case "d":
          return typeof arg === "bigint" ? `${arg}n` : typeof arg === "object" ? "NaN" : String(Number(arg));
        case "i":
          return typeof arg === "bigint" ? `${arg}n` : String(parseInt(arg, 10));
        case "f":
          return String(parseFloat(arg));
        case "j":
          try {
            return JSON.stringify(arg);
          } catch {
            return "[Circular]";
          }
        case "o":
        case "O":
          return inspect(arg, { depth: spec === "o" ? 4 : 2 });
        case "c":
          return "";
      }
      return match;
    });
  } else {
    out = inspect(first);
  }
  for (; rest < args.length; rest++) {
    const arg = args[rest];
    out += " " + (typeof arg === "string" ? arg : inspect(arg));
  }
  return out;
}

// ---- console ------------------------------------------------------------------------------------

// At build time the task table owns stdout, so everything the top level prints goes to stderr.
const write = (fd, text) => host.write(initPhase ? 2 : fd, text);
let groupIndent = "";
const counts = new Map();
const timings = new Map();
const printer = (fd) => (...args) => {
  const text = format(...args);
  write(fd, (groupIndent ? groupIndent + text.replace(/\n/g, "\n" + groupIndent) : text) + "\n");
};
const console = {
  log: printer(1),
  info: printer(1),
  debug: printer(1),
  warn: printer(2),
  error: printer(2),
  trace: (...args) => printer(2)(`Trace: ${format(...args)}\n${new Error().stack ?? ""}`.trimEnd()),
  dir: (value, options) => write(1, inspect(value, options) + "\n"),
  assert: (condition, ...args) => {
    if (!condition) printer(2)(args.length ? `Assertion failed: ${format(...args)}` : "Assertion failed");
  },
  count: (label = "default") => {
    counts.set(label, (counts.get(label) ?? 0) + 1);
    printer(1)(`${label}: ${counts.get(label)}`);
  },
  countReset: (label = "default") => counts.delete(label),
  time: (label = "default") => timings.set(label, performance.now()),
  timeLog: (label = "default", ...args) => printer(1)(`${label}: ${(performance.now() - (timings.get(label) ?? 0)).toFixed(3)}ms`, ...args),
  timeEnd: (label = "default") => {
    printer(1)(`${label}: ${(performance.now() - (timings.get(label) ?? 0)).toFixed(3)}ms`);
    timings.delete(label);
  },
  group: (...args) => {
    if (args.length) printer(1)(...args);
    groupIndent += "  ";
  },
  groupEnd: () => {
    groupIndent = groupIndent.slice(2);
  },
  table: (data) => printer(1)(data),
};
console.groupCollapsed = console.group;
globalThis.console = console;

// ---- events -------------------------------------------------------------------------------------

class EventEmitter {
  constructor() {
    this._events = new Map();
    this._maxListeners = undefined;
  }
  _list(name) {
    if (!this._events) this._events = new Map();
    let list = this._events.get(name);
    if (!list) this._events.set(name, (list = []));
    return list;
  }
  on(name, listener) {
    checkCallback(listener);
    if (this._events?.has("newListener")) this.emit("newListener", name, listener);
    this._list(name).push({ listener, once: false });
    return this;
  }
  addListener(name, listener) {
    return this.on(name, listener);
  }
  prependListener(name, listener) {
    checkCallback(listener);
    this._list(name).unshift({ listener, once: false });
    return this;
  }
  once(name, listener) {
    checkCallback(listener);
    this._list(name).push({ listener, once: true });
    return this;
  }
  prependOnceListener(name, listener) {
    checkCallback(listener);
    this._list(name).unshift({ listener, once: true });
    return this;
  }
  off(name, listener) {
    const list = this._events?.get(name);
    if (!list) return this;
    const index = list.findLastIndex((entry) => entry.listener === listener);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this._events.delete(name);
    if (this._events.has("removeListener")) this.emit("removeListener", name, listener);
    return this;
  }
  removeListener(name, listener) {
    return this.off(name, listener);
  }
  removeAllListeners(name) {
    if (name === undefined) this._events = new Map();
    else this._events?.delete(name);
    return this;
  }
  emit(name, ...args) {
    const list = this._events?.get(name);
    if (!list || list.length === 0) {
      if (name === "error") {
        const error = args[0];
        if (error instanceof Error) throw error;
        throw codedError(Error, "ERR_UNHANDLED_ERROR", `Unhandled error. (${inspect(error)})`);
      }
      return false;
    }
    for (const entry of [...list]) {
      if (entry.once) {
        const index = list.indexOf(entry);
        if (index >= 0) list.splice(index, 1);
      }
      entry.listener.apply(this, args);
    }
    if (list.length === 0) this._events.delete(name);
    return true;
  }
  listeners(name) {
    return (this._events?.get(name) ?? []).map((entry) => entry.listener);
  }
  rawListeners(name) {
    return this.listeners(name);
  }
  listenerCount(name) {
    return this._events?.get(name)?.length ?? 0;
  }
  eventNames() {
    return [...(this._events?.keys() ?? [])];
  }
  setMaxListeners(n) {
    this._maxListeners = n;
    return this;
  }
  getMaxListeners() {
    return this._maxListeners ?? EventEmitter.defaultMaxListeners;
  }
}
EventEmitter.defaultMaxListeners = 10;
EventEmitter.EventEmitter = EventEmitter;
EventEmitter.once = (emitter, name) =>
  new Promise((resolve, reject) => {
    const onError = (error) => {
      emitter.off(name, onEvent);
      reject(error);
    };
    const onEvent = (...args) => {
      if (name !== "error") emitter.off("error", onError);
      resolve(args);
    };
    emitter.once(name, onEvent);
    if (name !== "error") emitter.once("error", onError);
  });
EventEmitter.listenerCount = (emitter, name) => emitter.listenerCount(name);
EventEmitter.errorMonitor = Symbol("events.errorMonitor");

// ---- process ------------------------------------------------------------------------------------

const EXIT = Symbol("capsule.exit");
const startTime = performance.now();
const processObject = globalThis.process;
Object.setPrototypeOf(processObject, EventEmitter.prototype);
processObject._events = new Map();
function hrtime(previous) {
  const ns = BigInt(Math.round((performance.now() + virtualMs) * 1e6));
  let seconds = Number(ns / 1000000000n);
  let nanos = Number(ns % 1000000000n);
  if (Array.isArray(previous)) {
    seconds -= previous[0];
    nanos -= previous[1];
    if (nanos < 0) {
      seconds -= 1;
      nanos += 1e9;
    }
  }
  return [seconds, nanos];
}
hrtime.bigint = () => BigInt(Math.round((performance.now() + virtualMs) * 1e6));
Object.assign(processObject, {
  argv: ["/usr/local/bin/node", "/task"],
  argv0: "node",
  execArgv: [],
  execPath: "/usr/local/bin/node",
  title: "capsule",
  pid: 1,
  ppid: 0,
  platform: "linux",
  arch: "wasm32",
  version: "v22.0.0",
  versions: { node: "22.0.0", quickjs: "0.16.2", capsule: "0.1.0" },
  release: { name: "node" },
  config: { variables: {} },
  features: {},
  exitCode: undefined,
  browser: false,
  cwd: () => host.cwd(),
  chdir: () => {
    throw notSupported("process.chdir()");
  },
  umask: () => 0o22,
  uptime: () => (performance.now() - startTime) / 1000,
  hrtime,
  nextTick,
  memoryUsage: () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }),
  cpuUsage: () => ({ user: 0, system: 0 }),
  emitWarning: (warning) => printer(2)(`Warning: ${warning instanceof Error ? warning.message : warning}`),
  exit(code) {
    const status = code === undefined ? (processObject.exitCode ?? 0) : Number(code);
    const error = new Error(`process.exit(${status}) was called`);
    error[EXIT] = status;
    throw error;
  },
  abort() {
    processObject.exit(134);
  },
  kill() {
    throw notSupported("process.kill()");
  },
});
processObject.stdout.isTTY = false;
processObject.stderr.isTTY = false;
processObject.stdin = { isTTY: false, on() {}, read: () => null };

// ---- Buffer -------------------------------------------------------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;
B64_INDEX["-".charCodeAt(0)] = 62;
B64_INDEX["_".charCodeAt(0)] = 63;

function base64Encode(bytes, url = false) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=") + "=";
  }
  return url ? out.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") : out;
}

function base64Decode(text) {
  const out = [];
  let bits = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? B64_INDEX[code] : -1;
    if (digit < 0) continue;
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 255);
    }
  }
  return new Uint8Array(out);
}

function normalizeEncoding(encoding) {
  const e = String(encoding ?? "utf8").toLowerCase();
  switch (e) {
    case "utf8":
    case "utf-8":
      return "utf8";
    case "hex":
    case "base64":
    case "base64url":
    case "ascii":
      return e;
    case "latin1":
    case "binary":
      return "latin1";
    case "ucs2":
    case "ucs-2":
    case "utf16le":
    case "utf-16le":
      return "utf16le";
  }
  throw codedError(TypeError, "ERR_UNKNOWN_ENCODING", `Unknown encoding: ${encoding}`);
}

function encodeString(text, encoding) {
  switch (normalizeEncoding(encoding)) {
    case "utf8":
      return host.utf8Encode(text);
    case "hex": {
      const out = new Uint8Array(text.length >> 1);
      for (let i = 0; i < out.length; i++) {
        const byte = parseInt(text.substr(i * 2, 2), 16);
        if (Number.isNaN(byte)) return out.subarray(0, i);
        out[i] = byte;
      }
      return out;
    }
    case "base64":
    case "base64url":
      return base64Decode(text);
    case "ascii":
    case "latin1": {
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 255;
      return out;
    }
    case "utf16le": {
      const out = new Uint8Array(text.length * 2);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        out[i * 2] = c & 255;
        out[i * 2 + 1] = c >> 8;
      }
      return out;
    }
  }
}

function decodeBytes(bytes, encoding) {
  switch (normalizeEncoding(encoding)) {
    case "utf8":
      return host.utf8Decode(bytes instanceof Uint8Array && bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case "hex": {
      let out = "";
      for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
      return out;
    }
    case "base64":
      return base64Encode(bytes);
    case "base64url":
      return base64Encode(bytes, true);
    case "ascii": {
      let out = "";
      for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i] & 127);
      return out;
    }
    case "latin1": {
      let out = "";
      for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
      return out;
    }
    case "utf16le": {
      let out = "";
      for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode(bytes[i] | (bytes[i + 1] << 8));
      return out;
    }
  }
}

class Buffer extends Uint8Array {
  static from(value, encodingOrOffset, length) {
    if (typeof value === "string") return Buffer._wrap(encodeString(value, encodingOrOffset));
    if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer)) {
      const offset = encodingOrOffset ?? 0;
      return new Buffer(value, offset, length ?? value.byteLength - offset);
    }
    if (ArrayBuffer.isView(value)) {
      const copy = new Buffer(value.byteLength);
      copy.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      return copy;
    }
    if (Array.isArray(value)) {
      const copy = new Buffer(value.length);
      for (let i = 0; i < value.length; i++) copy[i] = value[i];
      return copy;
    }
    if (value && value.type === "Buffer" && Array.isArray(value.data)) return Buffer.from(value.data);
    if (value && typeof value.valueOf === "function" && value.valueOf() !== value) return Buffer.from(value.valueOf(), encodingOrOffset, length);
    throw codedError(TypeError, "ERR_INVALID_ARG_TYPE", "The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object.");
  }
  static _wrap(bytes) {
    return new Buffer(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  static alloc(size, fill, encoding) {
    const buffer = new Buffer(size);
    if (fill !== undefined && fill !== 0) buffer.fill(fill, 0, size, encoding);
    return buffer;
  }
  static allocUnsafe(size) {
    return new Buffer(size);
  }
  static allocUnsafeSlow(size) {
    return new Buffer(size);
  }
  static isBuffer(value) {
    return value instanceof Buffer;
  }
  static isEncoding(encoding) {
    try {
      normalizeEncoding(encoding);
      return true;
    } catch {
      return false;
    }
  }
  static byteLength(value, encoding) {
    if (typeof value !== "string") return value.byteLength;
    return encodeString(value, encoding).length;
  }
  static concat(list, totalLength) {
    const total = totalLength ?? list.reduce((sum, item) => sum + item.length, 0);
    const out = Buffer.alloc(total);
    let offset = 0;
    for (const item of list) {
      if (offset >= total) break;
      const part = item.subarray(0, total - offset);
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
  static compare(a, b) {
    return Buffer.prototype.compare.call(a, b);
  }
  toString(encoding, start = 0, end = this.length) {
    return decodeBytes(this.subarray(start, end), encoding);
  }
  toJSON() {
    return { type: "Buffer", data: [...this] };
  }
  equals(other) {
    return this.compare(other) === 0;
  }
  compare(other) {
    const n = Math.min(this.length, other.length);
    for (let i = 0; i < n; i++) if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1;
    return this.length === other.length ? 0 : this.length < other.length ? -1 : 1;
  }
  slice(start, end) {
    return this.subarray(start, end);
  }
  write(text, offset = 0, length, encoding) {
    if (typeof offset === "string") [encoding, offset] = [offset, 0];
    if (typeof length === "string") [encoding, length] = [length, undefined];
    const bytes = encodeString(text, encoding);
    const n = Math.min(bytes.length, this.length - offset, length ?? Infinity);
    this.set(bytes.subarray(0, n), offset);
    return n;
  }
  copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
    const part = this.subarray(sourceStart, Math.min(sourceEnd, sourceStart + target.length - targetStart));
    target.set(part, targetStart);
    return part.length;
  }
  fill(value, offset = 0, end = this.length, encoding) {
    if (typeof offset === "string") [encoding, offset, end] = [offset, 0, this.length];
    if (typeof value === "string") {
      const bytes = encodeString(value, encoding);
      if (bytes.length === 0) return super.fill(0, offset, end);
      for (let i = offset; i < end; i++) this[i] = bytes[(i - offset) % bytes.length];
      return this;
    }
    return super.fill(typeof value === "number" ? value & 255 : 0, offset, end);
  }
  indexOf(value, byteOffset = 0, encoding) {
    if (typeof value === "number") return super.indexOf(value & 255, byteOffset);
    const needle = typeof value === "string" ? encodeString(value, encoding) : value;
    outer: for (let i = byteOffset < 0 ? Math.max(0, this.length + byteOffset) : byteOffset; i <= this.length - needle.length; i++) {
      for (let j = 0; j < needle.length; j++) if (this[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  }
  includes(value, byteOffset, encoding) {
    return this.indexOf(value, byteOffset, encoding) !== -1;
  }
  _view() {
    return new DataView(this.buffer, this.byteOffset, this.byteLength);
  }
}
for (const [name, size, getter] of [
  ["UInt8", 1, "Uint8"], ["Int8", 1, "Int8"], ["UInt16", 2, "Uint16"], ["Int16", 2, "Int16"],
  ["UInt32", 4, "Uint32"], ["Int32", 4, "Int32"], ["Float", 4, "Float32"], ["Double", 8, "Float64"],
  ["BigUInt64", 8, "BigUint64"], ["BigInt64", 8, "BigInt64"],
]) {
  for (const endian of size === 1 ? [""] : ["LE", "BE"]) {
    const little = endian === "LE";
    Buffer.prototype[`read${name}${endian}`] = function (offset = 0) {
      if (offset + size > this.length) throw codedError(RangeError, "ERR_OUT_OF_RANGE", `The value of "offset" is out of range.`);
      return this._view()[`get${getter}`](offset, little);
    };
    Buffer.prototype[`write${name}${endian}`] = function (value, offset = 0) {
      if (offset + size > this.length) throw codedError(RangeError, "ERR_OUT_OF_RANGE", `The value of "offset" is out of range.`);
      this._view()[`set${getter}`](offset, value, little);
      return offset + size;
    };
    if (name.startsWith("UInt")) {
      Buffer.prototype[`readUint${name.slice(4)}${endian}`] = Buffer.prototype[`read${name}${endian}`];
      Buffer.prototype[`writeUint${name.slice(4)}${endian}`] = Buffer.prototype[`write${name}${endian}`];
    }
  }
}
const bufferModule = { Buffer, constants: { MAX_LENGTH: 2 ** 31 - 1, MAX_STRING_LENGTH: 2 ** 29 }, kMaxLength: 2 ** 31 - 1, atob: (s) => atob(s), btoa: (s) => btoa(s) };

// ---- web globals --------------------------------------------------------------------------------

class TextEncoder {
  get encoding() {
    return "utf-8";
  }
  encode(text = "") {
    return host.utf8Encode(String(text));
  }
  encodeInto(text, target) {
    const bytes = host.utf8Encode(String(text));
    const n = Math.min(bytes.length, target.length);
    target.set(bytes.subarray(0, n));
    return { read: String(text).length, written: n };
  }
}

class TextDecoder {
  constructor(encoding = "utf-8", options = {}) {
    const e = String(encoding).toLowerCase();
    if (!["utf-8", "utf8", "unicode-1-1-utf-8", "latin1", "ascii", "utf-16le"].includes(e)) {
      throw codedError(RangeError, "ERR_ENCODING_NOT_SUPPORTED", `The "${encoding}" encoding is not supported`);
    }
    this._encoding = e.startsWith("utf") && e !== "utf-16le" ? "utf-8" : e;
    this.fatal = Boolean(options.fatal);
    this.ignoreBOM = Boolean(options.ignoreBOM);
  }
  get encoding() {
    return this._encoding;
  }
  decode(input = new Uint8Array(0)) {
    const bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    if (this._encoding !== "utf-8") return decodeBytes(bytes, this._encoding === "utf-16le" ? "utf16le" : "latin1");
    let text = host.utf8Decode(bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes), this.fatal);
    if (!this.ignoreBOM && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return text;
  }
}

function btoa(text) {
  text = String(text);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) throw new DOMException("Invalid character", "InvalidCharacterError");
    bytes[i] = c;
  }
  return base64Encode(bytes);
}

function atob(text) {
  const clean = String(text).replace(/[\t\n\f\r ]/g, "");
  if (/[^A-Za-z0-9+/=]/.test(clean) || clean.length % 4 === 1) throw new DOMException("The string to be decoded is not correctly encoded.", "InvalidCharacterError");
  return decodeBytes(base64Decode(clean), "latin1");
}

class DOMException extends Error {
  constructor(message = "", name = "Error") {
    super(message);
    this.name = name;
  }
}

function structuredClone(value, seen = new Map()) {
  if (typeof value !== "object" || value === null) {
    if (typeof value === "function" || typeof value === "symbol") throw new DOMException(`${String(value)} could not be cloned.`, "DataCloneError");
    return value;
  }
  if (seen.has(value)) return seen.get(value);
  let copy;
  if (value instanceof Date) copy = new Date(value.getTime());
  else if (value instanceof RegExp) copy = new RegExp(value.source, value.flags);
  else if (value instanceof ArrayBuffer) copy = value.slice(0);
  else if (ArrayBuffer.isView(value)) copy = new value.constructor(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  else if (value instanceof Map) {
    copy = new Map();
    seen.set(value, copy);
    for (const [k, v] of value) copy.set(structuredClone(k, seen), structuredClone(v, seen));
    return copy;
  } else if (value instanceof Set) {
    copy = new Set();
    seen.set(value, copy);
    for (const v of value) copy.add(structuredClone(v, seen));
    return copy;
  } else if (value instanceof Error) {
    copy = new (globalThis[value.name] ?? Error)(value.message);
    copy.stack = value.stack;
  } else if (Array.isArray(value)) {
    copy = [];
    seen.set(value, copy);
    for (let i = 0; i < value.length; i++) copy[i] = structuredClone(value[i], seen);
    return copy;
  } else {
    copy = {};
    seen.set(value, copy);
    for (const key of Object.keys(value)) copy[key] = structuredClone(value[key], seen);
    return copy;
  }
  seen.set(value, copy);
  return copy;
}

class Event {
  constructor(type, options = {}) {
    this.type = String(type);
    this.bubbles = Boolean(options.bubbles);
    this.cancelable = Boolean(options.cancelable);
    this.defaultPrevented = false;
    this.timeStamp = performance.now();
    this.target = null;
    this.currentTarget = null;
  }
  preventDefault() {
    if (this.cancelable) this.defaultPrevented = true;
  }
  stopPropagation() {}
  stopImmediatePropagation() {
    this._stopped = true;
  }
}

class EventTarget {
  constructor() {
    Object.defineProperty(this, "_listeners", { value: new Map() });
  }
  addEventListener(type, listener, options = {}) {
    if (!listener) return;
    const list = this._listeners.get(type) ?? [];
    if (list.some((entry) => entry.listener === listener)) return;
    list.push({ listener, once: typeof options === "object" && Boolean(options.once) });
    this._listeners.set(type, list);
    if (typeof options === "object" && options.signal) options.signal.addEventListener("abort", () => this.removeEventListener(type, listener));
  }
  removeEventListener(type, listener) {
    const list = this._listeners.get(type);
    if (!list) return;
    const index = list.findIndex((entry) => entry.listener === listener);
    if (index >= 0) list.splice(index, 1);
  }
  dispatchEvent(event) {
    event.target = this;
    event.currentTarget = this;
    const handler = this[`on${event.type}`];
    if (typeof handler === "function") handler.call(this, event);
    for (const entry of [...(this._listeners.get(event.type) ?? [])]) {
      if (entry.once) this.removeEventListener(event.type, entry.listener);
      if (typeof entry.listener === "function") entry.listener.call(this, event);
      else entry.listener.handleEvent(event);
      if (event._stopped) break;
    }
    return !event.defaultPrevented;
  }
}

class AbortSignal extends EventTarget {
  constructor() {
    super();
    this.aborted = false;
    this.reason = undefined;
    this.onabort = null;
  }
  throwIfAborted() {
    if (this.aborted) throw this.reason;
  }
  _abort(reason) {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
    this.dispatchEvent(new Event("abort"));
  }
  static abort(reason) {
    const signal = new AbortSignal();
    signal._abort(reason);
    return signal;
  }
  static timeout(ms) {
    const signal = new AbortSignal();
    setTimeout(() => signal._abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")), ms);
    return signal;
  }
  static any(signals) {
    const signal = new AbortSignal();
    for (const s of signals) {
      if (s.aborted) {
        signal._abort(s.reason);
        break;
      }
      s.addEventListener("abort", () => signal._abort(s.reason));
    }
    return signal;
  }
}

class AbortController {
  constructor() {
    this.signal = new AbortSignal();
  }
  abort(reason) {
    this.signal._abort(reason);
  }
}

// ---- crypto -------------------------------------------------------------------------------------

function toBytes(data, encoding) {
  if (typeof data === "string") return encodeString(data, encoding);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw codedError(TypeError, "ERR_INVALID_ARG_TYPE", 'The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView.');
}

function concatBytes(chunks) {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

class Hash {
  constructor(algorithm, key) {
    this._algorithm = String(algorithm);
    this._key = key;
    this._chunks = [];
    this._done = false;
    // Fail early on an unknown algorithm, as Node does.
    if (key === undefined) host.hash(this._algorithm, new Uint8Array(0));
    else host.hmac(this._algorithm, key, new Uint8Array(0));
  }
  update(data, encoding) {
    if (this._done) throw codedError(Error, "ERR_CRYPTO_HASH_FINALIZED", "Digest already called");
    this._chunks.push(new Uint8Array(toBytes(data, encoding)));
    return this;
  }
  digest(encoding) {
    if (this._done) throw codedError(Error, "ERR_CRYPTO_HASH_FINALIZED", "Digest already called");
    this._done = true;
    const data = concatBytes(this._chunks);
    const out = Buffer._wrap(this._key === undefined ? host.hash(this._algorithm, data) : host.hmac(this._algorithm, this._key, data));
    return encoding === undefined || encoding === "buffer" ? out : out.toString(encoding);
  }
  copy() {
    const copy = new Hash(this._algorithm, this._key);
    copy._chunks = [...this._chunks];
    return copy;
  }
}

function getRandomValues(array) {
  noteRandom("crypto.getRandomValues()");
  if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array) {
    throw new DOMException("The data argument must be an integer-type TypedArray", "TypeMismatchError");
  }
  if (array.byteLength > 65536) throw new DOMException("The ArrayBufferView's byte length exceeds 65536", "QuotaExceededError");
  new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(host.randomBytes(array.byteLength));
  return array;
}

function randomUUID() {
  noteRandom("crypto.randomUUID()");
  const b = host.randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = decodeBytes(b, "hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const subtle = {
  async digest(algorithm, data) {
    const name = String(typeof algorithm === "object" ? algorithm.name : algorithm).toLowerCase().replace("-", "");
    if (!["sha1", "sha256", "sha384", "sha512"].includes(name)) throw new DOMException("Unrecognized algorithm name", "NotSupportedError");
    const out = host.hash(name, new Uint8Array(toBytes(data)));
    return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
  },
};

const cryptoModule = {
  createHash: (algorithm) => new Hash(algorithm),
  createHmac: (algorithm, key) => new Hash(algorithm, new Uint8Array(toBytes(key))),
  getHashes: () => ["md5", "sha1", "sha256", "sha384", "sha512"],
  randomBytes(size, callback) {
    noteRandom("crypto.randomBytes()");
    const bytes = Buffer._wrap(host.randomBytes(size));
    if (typeof callback === "function") {
      nextTick(callback, null, bytes);
      return undefined;
    }
    return bytes;
  },
  randomFillSync(buffer, offset = 0, size = buffer.byteLength - offset) {
    new Uint8Array(buffer.buffer ?? buffer, (buffer.byteOffset ?? 0) + offset, size).set(host.randomBytes(size));
    return buffer;
  },
  randomInt(min, max, callback) {
    noteRandom("crypto.randomInt()");
    if (max === undefined || typeof max === "function") [min, max, callback] = [0, min, max];
    const range = max - min;
    const words = host.randomBytes(6);
    const n = words.reduce((acc, byte) => acc * 256 + byte, 0);
    const value = min + (n % range);
    if (typeof callback === "function") {
      nextTick(callback, null, value);
      return undefined;
    }
    return value;
  },
  randomUUID,
  getRandomValues,
  timingSafeEqual(a, b) {
    if (a.byteLength !== b.byteLength) throw codedError(RangeError, "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH", "Input buffers must have the same byte length");
    const x = toBytes(a);
    const y = toBytes(b);
    let diff = 0;
    for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
    return diff === 0;
  },
  subtle,
  webcrypto: null,
};
const webCrypto = { getRandomValues, randomUUID, subtle };
cryptoModule.webcrypto = webCrypto;

// ---- path (POSIX) -------------------------------------------------------------------------------

function normalizeParts(parts, absolute) {
  const out = [];
  for (const part of parts) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else out.push(part);
  }
  return out;
}

function checkPath(value, name = "path") {
  if (typeof value !== "string") throw codedError(TypeError, "ERR_INVALID_ARG_TYPE", `The "${name}" argument must be of type string. Received ${inspect(value)}`);
  return value;
}

const path = {
  sep: "/",
  delimiter: ":",
  normalize(p) {
    checkPath(p);
    if (p === "") return ".";
    const absolute = p.startsWith("/");
    const trailing = p.endsWith("/");
    let out = normalizeParts(p.split("/"), absolute).join("/");
    if (out === "" && !absolute) out = ".";
    if (out !== "" && trailing) out += "/";
    return (absolute ? "/" : "") + out;
  },
  join(...parts) {
    parts.forEach((part) => checkPath(part));
    const joined = parts.filter((part) => part !== "").join("/");
    return joined === "" ? "." : path.normalize(joined);
  },
  resolve(...parts) {
    let resolved = "";
    for (let i = parts.length - 1; i >= 0 && !resolved.startsWith("/"); i--) {
      const part = checkPath(parts[i]);
      if (part !== "") resolved = resolved === "" ? part : `${part}/${resolved}`;
    }
    if (!resolved.startsWith("/")) resolved = `${processObject.cwd()}/${resolved}`;
    const out = "/" + normalizeParts(resolved.split("/"), true).join("/");
    return out;
  },
  isAbsolute: (p) => checkPath(p).startsWith("/"),
  dirname(p) {
    checkPath(p);
    if (p === "") return ".";
    const trimmed = p.replace(/\/+$/, "");
    if (trimmed === "") return "/";
    const index = trimmed.lastIndexOf("/");
    if (index < 0) return ".";
    if (index === 0) return "/";
    return trimmed.slice(0, index).replace(/\/+$/, "") || "/";
  },
  basename(p, ext) {
    checkPath(p);
    const trimmed = p.replace(/\/+$/, "");
    let base = trimmed.slice(trimmed.lastIndexOf("/") + 1);
    if (ext !== undefined && base.endsWith(ext) && base !== ext) base = base.slice(0, -ext.length);
    return base;
  },
  extname(p) {
    const base = path.basename(p);
    const index = base.lastIndexOf(".");
    return index <= 0 ? "" : base.slice(index);
  },
  relative(from, to) {
    const a = path.resolve(from).split("/").filter(Boolean);
    const b = path.resolve(to).split("/").filter(Boolean);
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return [...Array(a.length - i).fill(".."), ...b.slice(i)].join("/");
  },
  parse(p) {
    checkPath(p);
    const root = p.startsWith("/") ? "/" : "";
    const base = path.basename(p);
    const ext = path.extname(p);
    let dir = path.dirname(p);
    if (dir === "." && !p.includes("/")) dir = "";
    return { root, dir, base, ext, name: ext ? base.slice(0, -ext.length) : base };
  },
  format(object) {
    const dir = object.dir || object.root || "";
    const base = object.base || `${object.name ?? ""}${object.ext ? (object.ext.startsWith(".") ? "" : ".") + object.ext : ""}`;
    if (!dir) return base;
    return dir === object.root ? `${dir}${base}` : `${dir}/${base}`;
  },
  toNamespacedPath: (p) => p,
  matchesGlob() {
    throw notSupported("path.matchesGlob()");
  },
};
path.posix = path;
path.win32 = path;

// ---- util ---------------------------------------------------------------------------------------

const promisifyCustom = Symbol.for("nodejs.util.promisify.custom");
function promisify(fn) {
  checkCallback(fn);
  if (typeof fn[promisifyCustom] === "function") return fn[promisifyCustom];
  const wrapped = function (...args) {
    return new Promise((resolve, reject) => {
      fn.call(this, ...args, (error, ...values) => {
        if (error) reject(error);
        else resolve(values.length > 1 ? values : values[0]);
      });
    });
  };
  Object.setPrototypeOf(wrapped, Object.getPrototypeOf(fn));
  return Object.defineProperties(wrapped, Object.getOwnPropertyDescriptors(fn));
}
promisify.custom = promisifyCustom;

function callbackify(fn) {
  return function (...args) {
    const callback = args.pop();
    fn.apply(this, args).then(
      (value) => nextTick(callback, null, value),
      (error) => nextTick(callback, error ?? new Error("Promise was rejected with a falsy value")),
    );
  };
}

function isDeepStrictEqual(a, b, strict = true, seen = new Map()) {
  if (strict ? Object.is(a, b) : a == b || Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return !strict && a == b;
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (seen.get(a) === b) return true;
  seen.set(a, b);
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof RegExp) return b instanceof RegExp && String(a) === String(b);
  if (ArrayBuffer.isView(a)) {
    if (!ArrayBuffer.isView(b) || a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return x.every((v, i) => v === y[i]);
  }
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !isDeepStrictEqual(v, b.get(k), strict, seen)) return false;
    return true;
  }
  if (a instanceof Set) {
    if (!(b instanceof Set) || a.size !== b.size) return false;
    for (const v of a) if (!b.has(v) && ![...b].some((w) => isDeepStrictEqual(v, w, strict, seen))) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((key) => Object.prototype.hasOwnProperty.call(b, key) && isDeepStrictEqual(a[key], b[key], strict, seen));
}

const AsyncFunction = (async () => {}).constructor;
const GeneratorFunction = function* () {}.constructor;
const types = {
  isPromise: (v) => v instanceof Promise,
  isDate: (v) => v instanceof Date,
  isRegExp: (v) => v instanceof RegExp,
  isMap: (v) => v instanceof Map,
  isSet: (v) => v instanceof Set,
  isWeakMap: (v) => v instanceof WeakMap,
  isWeakSet: (v) => v instanceof WeakSet,
  isTypedArray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView),
  isUint8Array: (v) => v instanceof Uint8Array,
  isArrayBuffer: (v) => v instanceof ArrayBuffer,
  isAnyArrayBuffer: (v) => v instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer),
  isArrayBufferView: (v) => ArrayBuffer.isView(v),
  isDataView: (v) => v instanceof DataView,
  isAsyncFunction: (v) => v instanceof AsyncFunction,
  isGeneratorFunction: (v) => v instanceof GeneratorFunction,
  isNativeError: (v) => v instanceof Error,
  isBoxedPrimitive: (v) => v instanceof Number || v instanceof String || v instanceof Boolean,
  isSymbolObject: (v) => typeof v === "object" && v !== null && Object.prototype.toString.call(v) === "[object Symbol]",
  isProxy: () => false,
};

const util = {
  format,
  formatWithOptions: (_options, ...args) => format(...args),
  inspect,
  promisify,
  callbackify,
  inherits(ctor, superCtor) {
    Object.defineProperty(ctor, "super_", { value: superCtor, writable: true, configurable: true });
    Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
  },
  deprecate: (fn) => fn,
  debuglog: () => Object.assign(() => {}, { enabled: false }),
  isDeepStrictEqual: (a, b) => isDeepStrictEqual(a, b),
  types,
  isArray: Array.isArray,
  isError: (v) => v instanceof Error,
  isFunction: (v) => typeof v === "function",
  isString: (v) => typeof v === "string",
  isNumber: (v) => typeof v === "number",
  isObject: (v) => v !== null && typeof v === "object",
  isPrimitive: (v) => v === null || (typeof v !== "object" && typeof v !== "function"),
  isRegExp: types.isRegExp,
  isDate: types.isDate,
  stripVTControlCharacters: (s) => String(s).replace(/\u001b\[[0-9;]*[A-Za-z]/g, ""),
  toUSVString: (s) => String(s).toWellFormed?.() ?? String(s),
  TextEncoder,
  TextDecoder,
};
util.debug = util.debuglog;

// ---- assert -------------------------------------------------------------------------------------

class AssertionError extends Error {
  constructor(options) {
    super(options.message);
    this.name = "AssertionError";
    this.code = "ERR_ASSERTION";
    this.actual = options.actual;
    this.expected = options.expected;
    this.operator = options.operator;
    this.generatedMessage = options.generated ?? false;
  }
}

function makeAssert(strict) {
  const fail = (actual, expected, message, operator, generated) => {
    if (message instanceof Error) throw message;
    throw new AssertionError({ message: message ?? generated, actual, expected, operator, generated: message === undefined });
  };
  const assert = (value, message) => assert.ok(value, message);
  Object.assign(assert, {
    AssertionError,
    ok(value, message) {
      if (!value) fail(value, true, message, "==", "The expression evaluated to a falsy value:\n\n  assert.ok(" + inspect(value) + ")\n");
    },
    fail(message = "Failed") {
      fail(undefined, undefined, message, "fail");
    },
    equal(actual, expected, message) {
      if (strict ? !Object.is(actual, expected) : !(actual == expected || (actual !== actual && expected !== expected))) {
        fail(actual, expected, message, strict ? "strictEqual" : "==", `Expected values to be ${strict ? "strictly " : "loosely "}equal:\n\n${inspect(actual)} !== ${inspect(expected)}\n`);
      }
    },
    notEqual(actual, expected, message) {
      if (strict ? Object.is(actual, expected) : actual == expected) fail(actual, expected, message, "!=", `Expected "actual" to be ${strict ? "strictly " : "loosely "}unequal to: ${inspect(expected)}`);
    },
    strictEqual(actual, expected, message) {
      if (!Object.is(actual, expected)) fail(actual, expected, message, "strictEqual", `Expected values to be strictly equal:\n\n${inspect(actual)} !== ${inspect(expected)}\n`);
    },
    notStrictEqual(actual, expected, message) {
      if (Object.is(actual, expected)) fail(actual, expected, message, "notStrictEqual", `Expected "actual" to be strictly unequal to: ${inspect(expected)}`);
    },
    deepEqual(actual, expected, message) {
      if (!isDeepStrictEqual(actual, expected, strict)) fail(actual, expected, message, "deepEqual", `Expected values to be ${strict ? "strictly " : "loosely "}deep-equal:\n\n${inspect(actual)}\n\nshould equal\n\n${inspect(expected)}`);
    },
    deepStrictEqual(actual, expected, message) {
      if (!isDeepStrictEqual(actual, expected, true)) fail(actual, expected, message, "deepStrictEqual", `Expected values to be strictly deep-equal:\n\n${inspect(actual)}\n\nshould equal\n\n${inspect(expected)}`);
    },
    notDeepEqual(actual, expected, message) {
      if (isDeepStrictEqual(actual, expected, strict)) fail(actual, expected, message, "notDeepEqual", `Expected "actual" not to be deep-equal to: ${inspect(expected)}`);
    },
    notDeepStrictEqual(actual, expected, message) {
      if (isDeepStrictEqual(actual, expected, true)) fail(actual, expected, message, "notDeepStrictEqual", `Expected "actual" not to be strictly deep-equal to: ${inspect(expected)}`);
    },
    throws(fn, expected, message) {
      try {
        fn();
      } catch (error) {
        checkThrown(error, expected, message);
        return;
      }
      fail(undefined, expected, typeof expected === "string" ? expected : message, "throws", "Missing expected exception.");
    },
    doesNotThrow(fn, message) {
      try {
        fn();
      } catch (error) {
        fail(error, undefined, typeof message === "string" ? message : undefined, "doesNotThrow", `Got unwanted exception.\nActual message: "${error?.message}"`);
      }
    },
    async rejects(promiseOrFn, expected, message) {
      try {
        await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
      } catch (error) {
        checkThrown(error, expected, message);
        return;
      }
      fail(undefined, expected, message, "rejects", "Missing expected rejection.");
    },
    async doesNotReject(promiseOrFn, message) {
      try {
        await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
      } catch (error) {
        fail(error, undefined, message, "doesNotReject", `Got unwanted rejection.\nActual message: "${error?.message}"`);
      }
    },
    match(actual, regexp, message) {
      if (!regexp.test(actual)) fail(actual, regexp, message, "match", `The input did not match the regular expression ${regexp}. Input:\n\n${inspect(actual)}\n`);
    },
    doesNotMatch(actual, regexp, message) {
      if (regexp.test(actual)) fail(actual, regexp, message, "doesNotMatch", `The input was expected to not match the regular expression ${regexp}. Input:\n\n${inspect(actual)}\n`);
    },
    ifError(value) {
      if (value !== null && value !== undefined) throw value;
    },
  });
  function checkThrown(error, expected, message) {
    if (expected === undefined || typeof expected === "string") return;
    if (expected instanceof RegExp) {
      if (!expected.test(String(error?.message ?? error))) fail(error, expected, message, "throws", `The error message does not match ${expected}`);
    } else if (typeof expected === "function") {
      if (expected.prototype !== undefined && error instanceof expected) return;
      if (Error.isPrototypeOf(expected) || expected === Error) fail(error, expected, message, "throws", `The error is expected to be an instance of "${expected.name}"`);
      if (expected.call({}, error) !== true) fail(error, expected, message, "throws", "The validation function is expected to return \"true\"");
    } else if (typeof expected === "object") {
      for (const key of Object.keys(expected)) {
        const want = expected[key];
        const ok = want instanceof RegExp && typeof error?.[key] === "string" ? want.test(error[key]) : isDeepStrictEqual(error?.[key], want);
        if (!ok) fail(error, expected, message, "throws", `Expected values to be strictly deep-equal: ${key}`);
      }
    }
  }
  if (strict) {
    assert.equal = assert.strictEqual;
    assert.notEqual = assert.notStrictEqual;
    assert.deepEqual = assert.deepStrictEqual;
    assert.notDeepEqual = assert.notDeepStrictEqual;
  }
  return assert;
}
const assertModule = makeAssert(false);
assertModule.strict = makeAssert(true);
assertModule.strict.strict = assertModule.strict;

// ---- fs -----------------------------------------------------------------------------------------

function pathArg(value) {
  if (value instanceof URL) return urlModule.fileURLToPath(value);
  if (value instanceof Uint8Array) return decodeBytes(value, "utf8");
  return checkPath(value);
}

function encodingOf(options) {
  return typeof options === "string" ? options : options?.encoding ?? null;
}

class Stats {
  constructor(raw) {
    this.size = raw.size;
    this._file = raw.isFile;
    this._dir = raw.isDirectory;
    this.mtimeMs = raw.mtimeMs;
    this.atimeMs = raw.atimeMs;
    this.ctimeMs = raw.mtimeMs;
    this.birthtimeMs = raw.birthtimeMs;
    this.mtime = new Date(raw.mtimeMs);
    this.atime = new Date(raw.atimeMs);
    this.ctime = new Date(raw.mtimeMs);
    this.birthtime = new Date(raw.birthtimeMs);
    this.mode = raw.isDirectory ? 0o40755 : 0o100644;
    this.uid = 0;
    this.gid = 0;
    this.nlink = 1;
    this.dev = 0;
    this.ino = 0;
    this.blksize = 4096;
    this.blocks = Math.ceil(raw.size / 512);
  }
  isFile() {
    return this._file;
  }
  isDirectory() {
    return this._dir;
  }
  isSymbolicLink() {
    return false;
  }
  isFIFO() {
    return false;
  }
  isSocket() {
    return false;
  }
  isBlockDevice() {
    return false;
  }
  isCharacterDevice() {
    return false;
  }
}

class Dirent {
  constructor(name, dir) {
    this.name = name;
    this.parentPath = dir;
    this.path = dir;
    // The entry's type as of the listing, as Node's readdir reports it.
    this._stats = new Stats(host.stat(`${dir}/${name}`));
  }
  _stat() {
    return this._stats;
  }
  isFile() {
    return this._stat().isFile();
  }
  isDirectory() {
    return this._stat().isDirectory();
  }
  isSymbolicLink() {
    return false;
  }
}

function dataBytes(data, options) {
  if (typeof data === "string") return encodeString(data, encodingOf(options) ?? "utf8");
  return new Uint8Array(toBytes(data));
}

const fsSync = {
  readFileSync(file, options) {
    const bytes = Buffer._wrap(host.readFile(pathArg(file)));
    const encoding = encodingOf(options);
    return encoding ? bytes.toString(encoding) : bytes;
  },
  writeFileSync(file, data, options) {
    const flag = typeof options === "object" ? options?.flag : undefined;
    host.writeFile(pathArg(file), dataBytes(data, options), flag === "a");
  },
  appendFileSync(file, data, options) {
    host.writeFile(pathArg(file), dataBytes(data, options), true);
  },
  existsSync(file) {
    try {
      return host.exists(pathArg(file));
    } catch {
      return false;
    }
  },
  statSync(file, options) {
    try {
      return new Stats(host.stat(pathArg(file)));
    } catch (error) {
      if (options?.throwIfNoEntry === false && error.code === "ENOENT") return undefined;
      throw error;
    }
  },
  lstatSync(file, options) {
    return fsSync.statSync(file, options);
  },
  readdirSync(dir, options) {
    const names = host.readDir(pathArg(dir));
    if (options?.withFileTypes) return names.map((name) => new Dirent(name, pathArg(dir)));
    return names;
  },
  mkdirSync(dir, options) {
    const recursive = Boolean(typeof options === "object" && options?.recursive);
    const existed = recursive && host.exists(pathArg(dir));
    host.mkdir(pathArg(dir), recursive);
    return recursive && !existed ? path.resolve(pathArg(dir)) : undefined;
  },
  rmSync(file, options = {}) {
    host.rm(pathArg(file), Boolean(options.recursive), Boolean(options.force));
  },
  rmdirSync(dir, options = {}) {
    host.rm(pathArg(dir), Boolean(options.recursive), false);
  },
  unlinkSync(file) {
    host.rm(pathArg(file), false, false);
  },
  renameSync(from, to) {
    host.rename(pathArg(from), pathArg(to));
  },
  copyFileSync(from, to) {
    host.writeFile(pathArg(to), host.readFile(pathArg(from)), false);
  },
  accessSync(file) {
    host.stat(pathArg(file));
  },
  realpathSync(file) {
    return path.resolve(pathArg(file));
  },
  mkdtempSync(prefix) {
    const dir = `${prefix}${randomUUID().slice(0, 6)}`;
    host.mkdir(dir, false);
    return dir;
  },
};
fsSync.realpathSync.native = fsSync.realpathSync;

const fsPromises = {};
const fs = { ...fsSync, promises: fsPromises, constants: { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 }, Stats, Dirent };
for (const [name, fn] of Object.entries(fsSync)) {
  if (name === "existsSync") continue;
  const base = name.slice(0, -4);
  // Promise flavour: runs synchronously (the task is single-threaded), settles asynchronously.
  fsPromises[base] = async (...args) => fn(...args);
  // Callback flavour: the callback runs on a later tick, as in Node.
  fs[base] = (...args) => {
    const callback = args.pop();
    checkCallback(callback);
    let result;
    try {
      result = fn(...args);
    } catch (error) {
      nextTick(callback, error);
      return;
    }
    nextTick(callback, null, result);
  };
}
fs.exists = (file, callback) => nextTick(callback, fsSync.existsSync(file));
fsPromises.constants = fs.constants;
// Streams over whole files: read at once (in chunks of `highWaterMark`), written per chunk.
fs.createReadStream = (file, options = {}) => {
  const opts = typeof options === "string" ? { encoding: options } : options;
  const stream = new streamModule.Readable({ encoding: opts.encoding ?? null });
  const size = opts.highWaterMark ?? 65536;
  let data = null;
  let offset = 0;
  stream.path = pathArg(file);
  stream._read = () => {
    try {
      data ??= host.readFile(stream.path).subarray(opts.start ?? 0, opts.end === undefined ? undefined : opts.end + 1);
    } catch (error) {
      stream.destroy(error);
      return;
    }
    if (offset >= data.length) {
      stream.push(null);
      return;
    }
    stream.push(Buffer.from(data.subarray(offset, offset + size)));
    offset += size;
  };
  return stream;
};
fs.createWriteStream = (file, options = {}) => {
  const opts = typeof options === "string" ? { encoding: options } : options;
  const target = pathArg(file);
  let first = opts.flags !== "a";
  const stream = new streamModule.Writable({
    write(chunk, encoding, callback) {
      try {
        host.writeFile(target, dataBytes(chunk, encoding === "buffer" ? undefined : encoding), !first);
        first = false;
        callback();
      } catch (error) {
        callback(error);
      }
    },
    final(callback) {
      try {
        if (first) host.writeFile(target, new Uint8Array(0), false);
        callback();
      } catch (error) {
        callback(error);
      }
    },
  });
  stream.path = target;
  return stream;
};
fs.watch = () => {
  throw notSupported("fs.watch()");
};

// ---- os -----------------------------------------------------------------------------------------

const os = {
  EOL: "\n",
  devNull: "/dev/null",
  platform: () => "linux",
  type: () => "Linux",
  release: () => "6.0.0-capsule",
  version: () => "capsule",
  machine: () => "wasm32",
  arch: () => "wasm32",
  hostname: () => "capsule",
  homedir: () => processObject.env.HOME ?? "/",
  tmpdir: () => processObject.env.TMPDIR ?? "/tmp",
  endianness: () => "LE",
  uptime: () => processObject.uptime(),
  loadavg: () => [0, 0, 0],
  totalmem: () => 4294967296,
  freemem: () => 4294967296,
  availableParallelism: () => 1,
  cpus: () => [{ model: "wasm32", speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } }],
  networkInterfaces: () => ({}),
  userInfo: () => ({ uid: 0, gid: 0, username: "capsule", homedir: "/", shell: null }),
  constants: { signals: {}, errno: {}, priority: {} },
};

// ---- url ----------------------------------------------------------------------------------------

const SPECIAL_PORTS = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "ftp:": "21", "file:": "" };

function percentEncode(text, keep) {
  let out = "";
  for (const byte of host.utf8Encode(text)) {
    const c = String.fromCharCode(byte);
    out += byte < 128 && keep.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
const PATH_KEEP = /[A-Za-z0-9\-._~!$&'()*+,;=:@/%]/;
const QUERY_KEEP = /[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/;

function removeDotSegments(pathname) {
  const input = pathname.split("/");
  const out = [];
  for (let i = 0; i < input.length; i++) {
    const segment = input[i];
    const last = i === input.length - 1;
    if (segment === "." || segment === "%2e" || segment === "%2E") {
      if (last) out.push("");
    } else if (segment === ".." || segment.toLowerCase() === "%2e%2e") {
      if (out.length > 1) out.pop();
      if (last) out.push("");
    } else out.push(segment);
  }
  return out.join("/");
}

class URLSearchParams {
  constructor(init = "") {
    this._list = [];
    this._url = null;
    if (typeof init === "string") this._parse(init);
    else if (init instanceof URLSearchParams) this._list = init._list.map(([k, v]) => [k, v]);
    else if (init && typeof init[Symbol.iterator] === "function") {
      for (const pair of init) this._list.push([String(pair[0]), String(pair[1])]);
    } else if (init && typeof init === "object") {
      for (const key of Object.keys(init)) this._list.push([key, String(init[key])]);
    }
  }
  _parse(text) {
    this._list = [];
    for (const part of text.replace(/^\?/, "").split("&")) {
      if (part === "") continue;
      const index = part.indexOf("=");
      const decode = (s) => {
        try {
          return decodeURIComponent(s.replace(/\+/g, " "));
        } catch {
          return s;
        }
      };
      this._list.push(index < 0 ? [decode(part), ""] : [decode(part.slice(0, index)), decode(part.slice(index + 1))]);
    }
  }
  _update() {
    if (this._url) this._url._search = this._list.length ? `?${this.toString()}` : "";
  }
  get size() {
    return this._list.length;
  }
  append(name, value) {
    this._list.push([String(name), String(value)]);
    this._update();
  }
  delete(name, value) {
    this._list = this._list.filter(([k, v]) => k !== String(name) || (value !== undefined && v !== String(value)));
    this._update();
  }
  get(name) {
    return this._list.find(([k]) => k === String(name))?.[1] ?? null;
  }
  getAll(name) {
    return this._list.filter(([k]) => k === String(name)).map(([, v]) => v);
  }
  has(name, value) {
    return this._list.some(([k, v]) => k === String(name) && (value === undefined || v === String(value)));
  }
  set(name, value) {
    const index = this._list.findIndex(([k]) => k === String(name));
    if (index < 0) this._list.push([String(name), String(value)]);
    else {
      this._list[index][1] = String(value);
      this._list = this._list.filter(([k], i) => i <= index || k !== String(name));
    }
    this._update();
  }
  sort() {
    this._list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this._update();
  }
  forEach(callback, thisArg) {
    for (const [k, v] of this._list) callback.call(thisArg, v, k, this);
  }
  keys() {
    return this._list.map(([k]) => k)[Symbol.iterator]();
  }
  values() {
    return this._list.map(([, v]) => v)[Symbol.iterator]();
  }
  entries() {
    return this._list.map(([k, v]) => [k, v])[Symbol.iterator]();
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  toString() {
    const encode = (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    return this._list.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&");
  }
  [inspectCustom]() {
    return `URLSearchParams { ${this._list.map(([k, v]) => `${quoteString(k)} => ${quoteString(v)}`).join(", ")} }`;
  }
}

const URL_PATTERN = /^([A-Za-z][A-Za-z0-9+.\-]*:)(.*)$/s;

class URL {
  constructor(input, base) {
    input = String(input).trim();
    const match = URL_PATTERN.exec(input);
    if (match) this._parseAbsolute(match[1].toLowerCase(), match[2], input);
    else {
      if (base === undefined) throw codedError(TypeError, "ERR_INVALID_URL", `Invalid URL: ${input}`);
      const b = base instanceof URL ? base : new URL(base);
      this._parseRelative(input, b);
    }
  }
  static canParse(input, base) {
    try {
      new URL(input, base);
      return true;
    } catch {
      return false;
    }
  }
  static parse(input, base) {
    try {
      return new URL(input, base);
    } catch {
      return null;
    }
  }
  _special() {
    return this._protocol in SPECIAL_PORTS;
  }
  _parseAbsolute(protocol, rest, input) {
    this._protocol = protocol;
    this._username = "";
    this._password = "";
    this._hostname = "";
    this._port = "";
    this._hash = "";
    this._search = "";
    const hashIndex = rest.indexOf("#");
    if (hashIndex >= 0) {
      this._hash = rest.slice(hashIndex) === "#" ? "" : percentEncode(rest.slice(hashIndex), QUERY_KEEP.constructor === RegExp ? /[^\s"<>`]/ : QUERY_KEEP);
      rest = rest.slice(0, hashIndex);
    }
    const queryIndex = rest.indexOf("?");
    if (queryIndex >= 0) {
      this._search = rest.slice(queryIndex) === "?" ? "" : percentEncode(rest.slice(queryIndex), QUERY_KEEP);
      rest = rest.slice(0, queryIndex);
    }
    if (this._special()) rest = rest.replace(/\\/g, "/");
    if (rest.startsWith("//") || (this._special() && this._protocol !== "file:")) {
      rest = this._special() && this._protocol !== "file:" ? rest.replace(/^\/*/, "") : rest.slice(2);
      const slash = rest.indexOf("/");
      const authority = slash < 0 ? rest : rest.slice(0, slash);
      rest = slash < 0 ? "" : rest.slice(slash);
      this._parseAuthority(authority, input);
      this._opaque = false;
      this._pathname = percentEncode(removeDotSegments(rest || "/"), PATH_KEEP);
      if (!this._special() && rest === "") this._pathname = "";
    } else if (this._protocol === "file:" || rest.startsWith("/")) {
      this._opaque = false;
      this._pathname = percentEncode(removeDotSegments(rest || "/"), PATH_KEEP);
    } else {
      this._opaque = true;
      this._pathname = rest;
    }
    this._initParams();
  }
  _parseAuthority(authority, input) {
    const at = authority.lastIndexOf("@");
    if (at >= 0) {
      const credentials = authority.slice(0, at);
      authority = authority.slice(at + 1);
      const colon = credentials.indexOf(":");
      this._username = percentEncode(colon < 0 ? credentials : credentials.slice(0, colon), /[A-Za-z0-9\-._~!$&'()*+,;=%]/);
      this._password = colon < 0 ? "" : percentEncode(credentials.slice(colon + 1), /[A-Za-z0-9\-._~!$&'()*+,;=%]/);
    }
    const portMatch = /:(\d*)$/.exec(authority);
    if (portMatch && !authority.endsWith("]")) {
      authority = authority.slice(0, portMatch.index);
      const port = portMatch[1];
      if (port !== "" && Number(port) > 65535) throw codedError(TypeError, "ERR_INVALID_URL", `Invalid URL: ${input}`);
      this._port = port === "" || port === SPECIAL_PORTS[this._protocol] ? "" : String(Number(port));
    }
    let hostname = authority;
    try {
      hostname = decodeURIComponent(hostname);
    } catch {
      throw codedError(TypeError, "ERR_INVALID_URL", `Invalid URL: ${input}`);
    }
    if (this._special()) hostname = hostname.toLowerCase();
    if (/[\s<>^|%]/.test(hostname) || (this._special() && this._protocol !== "file:" && hostname === "")) {
      throw codedError(TypeError, "ERR_INVALID_URL", `Invalid URL: ${input}`);
    }
    this._hostname = hostname;
  }
  _parseRelative(input, base) {
    if (base._opaque) throw codedError(TypeError, "ERR_INVALID_URL", `Invalid URL: ${input}`);
    if (input.startsWith("//")) {
      this._parseAbsolute(base._protocol, input, input);
      return;
    }
    Object.assign(this, {
      _protocol: base._protocol,
      _username: base._username,
      _password: base._password,
      _hostname: base._hostname,
      _port: base._port,
      _opaque: false,
    });
    let rest = input;
    this._hash = "";
    const hashIndex = rest.indexOf("#");
    if (hashIndex >= 0) {
      this._hash = rest.slice(hashIndex) === "#" ? "" : rest.slice(hashIndex);
      rest = rest.slice(0, hashIndex);
    }
    const queryIndex = rest.indexOf("?");
    let search = null;
    if (queryIndex >= 0) {
      search = rest.slice(queryIndex) === "?" ? "" : percentEncode(rest.slice(queryIndex), QUERY_KEEP);
      rest = rest.slice(0, queryIndex);
    }
    if (rest === "") {
      this._pathname = base._pathname;
      this._search = search ?? base._search;
    } else {
      const joined = rest.startsWith("/") ? rest : base._pathname.slice(0, base._pathname.lastIndexOf("/") + 1) + rest;
      this._pathname = percentEncode(removeDotSegments(joined), PATH_KEEP);
      this._search = search ?? "";
    }
    this._initParams();
  }
  _initParams() {
    this._params = new URLSearchParams(this._search);
    this._params._url = this;
  }
  get protocol() {
    return this._protocol;
  }
  set protocol(value) {
    this._protocol = String(value).replace(/:?$/, ":").toLowerCase();
  }
  get username() {
    return this._username;
  }
  set username(value) {
    this._username = percentEncode(String(value), /[A-Za-z0-9\-._~!$&'()*+,;=%]/);
  }
  get password() {
    return this._password;
  }
  set password(value) {
    this._password = percentEncode(String(value), /[A-Za-z0-9\-._~!$&'()*+,;=%]/);
  }
  get hostname() {
    return this._hostname;
  }
  set hostname(value) {
    this._hostname = this._special() ? String(value).toLowerCase() : String(value);
  }
  get port() {
    return this._port;
  }
  set port(value) {
    const port = String(value);
    this._port = port === "" || port === SPECIAL_PORTS[this._protocol] ? "" : String(parseInt(port, 10));
  }
  get host() {
    return this._port ? `${this._hostname}:${this._port}` : this._hostname;
  }
  set host(value) {
    const [hostname, port = ""] = String(value).split(":");
    this.hostname = hostname;
    this.port = port;
  }
  get origin() {
    return this._special() && this._protocol !== "file:" ? `${this._protocol}//${this.host}` : "null";
  }
  get pathname() {
    return this._pathname;
  }
  set pathname(value) {
    const text = String(value);
    this._pathname = percentEncode(removeDotSegments(text.startsWith("/") ? text : `/${text}`), PATH_KEEP);
  }
  get search() {
    return this._search;
  }
  set search(value) {
    const text = String(value);
    this._search = text === "" || text === "?" ? "" : percentEncode(text.startsWith("?") ? text : `?${text}`, QUERY_KEEP);
    this._params._parse(this._search);
  }
  get searchParams() {
    return this._params;
  }
  get hash() {
    return this._hash;
  }
  set hash(value) {
    const text = String(value);
    this._hash = text === "" || text === "#" ? "" : text.startsWith("#") ? text : `#${text}`;
  }
  get href() {
    if (this._opaque) return `${this._protocol}${this._pathname}${this._search}${this._hash}`;
    const credentials = this._username || this._password ? `${this._username}${this._password ? `:${this._password}` : ""}@` : "";
    const authority = this._special() || this._hostname !== "" || credentials ? `//${credentials}${this.host}` : "";
    return `${this._protocol}${authority}${this._pathname}${this._search}${this._hash}`;
  }
  set href(value) {
    Object.assign(this, new URL(value));
    this._initParams();
  }
  toString() {
    return this.href;
  }
  toJSON() {
    return this.href;
  }
  [inspectCustom]() {
    return `URL { href: ${quoteString(this.href)} }`;
  }
}

const urlModule = {
  URL,
  URLSearchParams,
  fileURLToPath(value) {
    const url = typeof value === "string" ? new URL(value) : value;
    if (url.protocol !== "file:") throw codedError(TypeError, "ERR_INVALID_URL_SCHEME", "The URL must be of scheme file");
    return decodeURIComponent(url.pathname);
  },
  pathToFileURL(file) {
    return new URL(`file://${percentEncode(path.resolve(file), /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/)}`);
  },
  parse(text, parseQuery = false) {
    const url = new URL(text, "http://relative.invalid");
    const relative = url.hostname === "relative.invalid";
    return {
      protocol: relative ? null : url.protocol,
      slashes: relative ? null : true,
      auth: url.username ? `${decodeURIComponent(url.username)}${url.password ? `:${decodeURIComponent(url.password)}` : ""}` : null,
      host: relative ? null : url.host,
      port: url.port || null,
      hostname: relative ? null : url.hostname,
      hash: url.hash || null,
      search: url.search || null,
      query: parseQuery ? Object.fromEntries(url.searchParams) : url.search.slice(1) || null,
      pathname: url.pathname,
      path: `${url.pathname}${url.search}`,
      href: relative ? text : url.href,
    };
  },
  format(value) {
    if (value instanceof URL) return value.href;
    if (typeof value === "string") return value;
    const auth = value.auth ? `${value.auth}@` : "";
    const host = value.host ?? `${value.hostname ?? ""}${value.port ? `:${value.port}` : ""}`;
    const search = value.search ?? (value.query && typeof value.query === "object" ? `?${new URLSearchParams(value.query)}` : "");
    return `${value.protocol ?? ""}${value.protocol || host ? "//" : ""}${auth}${host}${value.pathname ?? ""}${search}${value.hash ?? ""}`;
  },
};

// ---- string_decoder -----------------------------------------------------------------------------

class StringDecoder {
  constructor(encoding = "utf8") {
    this.encoding = normalizeEncoding(encoding);
    this._pending = new Uint8Array(0);
  }
  write(chunk) {
    const bytes = typeof chunk === "string" ? encodeString(chunk) : toBytes(chunk);
    if (this.encoding !== "utf8") return decodeBytes(bytes, this.encoding);
    const all = this._pending.length ? concatBytes([this._pending, bytes]) : bytes;
    // Keep an incomplete UTF-8 sequence at the end for the next chunk.
    let cut = all.length;
    for (let i = all.length - 1; i >= Math.max(0, all.length - 3); i--) {
      const byte = all[i];
      if ((byte & 0xc0) === 0x80) continue;
      const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
      if (all.length - i < need) cut = i;
      break;
    }
    this._pending = new Uint8Array(all.subarray(cut));
    return host.utf8Decode(new Uint8Array(all.subarray(0, cut)));
  }
  end(chunk) {
    let out = chunk === undefined ? "" : this.write(chunk);
    if (this._pending.length) out += host.utf8Decode(this._pending);
    this._pending = new Uint8Array(0);
    return out;
  }
}

// ---- timers -------------------------------------------------------------------------------------

const timersModule = { setTimeout, setInterval, setImmediate, clearTimeout, clearInterval: clearTimeout, clearImmediate };
function abortable(signal, start) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const cancel = start(resolve);
    signal?.addEventListener("abort", () => {
      cancel();
      reject(signal.reason);
    });
  });
}
const timersPromises = {
  setTimeout: (ms, value, options = {}) =>
    abortable(options.signal, (resolve) => {
      const timer = setTimeout(() => resolve(value), ms);
      return () => clearTimeout(timer);
    }),
  setImmediate: (value, options = {}) =>
    abortable(options.signal, (resolve) => {
      const immediate = setImmediate(() => resolve(value));
      return () => clearImmediate(immediate);
    }),
  async *setInterval(ms, value) {
    while (true) yield await timersPromises.setTimeout(ms, value);
  },
  scheduler: {
    wait: (ms, options) => timersPromises.setTimeout(ms, undefined, options),
    yield: () => timersPromises.setImmediate(),
  },
};
timersModule.promises = timersPromises;

// ---- globals ------------------------------------------------------------------------------------

Object.assign(globalThis, {
  setTimeout,
  setInterval,
  setImmediate,
  clearTimeout,
  clearInterval: clearTimeout,
  clearImmediate,
  Buffer,
  TextEncoder,
  TextDecoder,
  atob,
  btoa,
  structuredClone: (value) => structuredClone(value),
  Event,
  EventTarget,
  AbortController,
  AbortSignal,
  DOMException,
  URL,
  URLSearchParams,
  crypto: webCrypto,
  global: globalThis,
});
if (typeof globalThis.queueMicrotask !== "function") {
  globalThis.queueMicrotask = (fn) => Promise.resolve().then(fn);
}

// ---- stream (a small subset: no backpressure, no readable mode) ---------------------------------

function toChunk(stream, chunk, encoding) {
  if (stream._objectMode || typeof chunk !== "string") return chunk;
  return Buffer.from(chunk, encoding);
}

class Readable extends EventEmitter {
  constructor(options = {}) {
    super();
    this._objectMode = Boolean(options.objectMode || options.readableObjectMode);
    this._encoding = options.encoding ?? null;
    this._buffer = [];
    this._ended = false;
    this._endEmitted = false;
    this._flowing = null;
    this._waiting = false;
    this._scheduled = false;
    this.readable = true;
    this.destroyed = false;
    if (typeof options.read === "function") this._read = options.read;
    if (typeof options.destroy === "function") this._destroy = options.destroy;
  }
  _read() {}
  _destroy(error, callback) {
    callback(error);
  }
  push(chunk, encoding) {
    this._waiting = false;
    if (chunk === null) this._ended = true;
    else this._buffer.push(toChunk(this, chunk, encoding));
    this._schedule();
    return !this._ended;
  }
  unshift(chunk) {
    this._buffer.unshift(chunk);
  }
  setEncoding(encoding) {
    this._encoding = encoding;
    return this;
  }
  _decode(chunk) {
    return this._encoding && chunk instanceof Uint8Array ? Buffer.from(chunk).toString(this._encoding) : chunk;
  }
  _schedule() {
    if (this._scheduled || this._flowing !== true) return;
    this._scheduled = true;
    nextTick(() => {
      this._scheduled = false;
      this._flow();
    });
  }
  _flow() {
    while (this._flowing === true && !this.destroyed) {
      if (this._buffer.length) {
        this.emit("data", this._decode(this._buffer.shift()));
        continue;
      }
      if (this._ended || this._waiting) break;
      this._waiting = true;
      this._read(16384);
      if (this._waiting) break;
    }
    if (this._ended && this._buffer.length === 0 && !this._endEmitted) {
      this._endEmitted = true;
      this.readable = false;
      nextTick(() => {
        this.emit("end");
        this.emit("close");
      });
    }
  }
  read() {
    if (this._buffer.length === 0 && !this._ended) {
      this._waiting = true;
      this._read(16384);
    }
    if (this._buffer.length === 0) return null;
    return this._decode(this._buffer.shift());
  }
  on(name, listener) {
    super.on(name, listener);
    if (name === "data" && this._flowing !== false) this.resume();
    return this;
  }
  resume() {
    this._flowing = true;
    this._schedule();
    return this;
  }
  pause() {
    this._flowing = false;
    return this;
  }
  isPaused() {
    return this._flowing === false;
  }
  pipe(destination, options = {}) {
    this.on("data", (chunk) => destination.write(chunk));
    if (options.end !== false) this.once("end", () => destination.end());
    return destination;
  }
  unpipe() {
    this.removeAllListeners("data");
    return this;
  }
  destroy(error) {
    if (this.destroyed) return this;
    this.destroyed = true;
    this._destroy(error ?? null, (err) => {
      nextTick(() => {
        if (err) this.emit("error", err);
        this.emit("close");
      });
    });
    return this;
  }
  async *[Symbol.asyncIterator]() {
    const queue = [];
    let done = false;
    let failure = null;
    let wake = null;
    const notify = () => {
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    this.on("data", (chunk) => {
      queue.push(chunk);
      notify();
    });
    this.once("end", () => {
      done = true;
      notify();
    });
    this.once("error", (error) => {
      failure = error;
      notify();
    });
    while (true) {
      if (queue.length) yield queue.shift();
      else if (failure) throw failure;
      else if (done) return;
      else await new Promise((resolve) => (wake = resolve));
    }
  }
  static from(iterable, options = {}) {
    const iterator = iterable[Symbol.asyncIterator] ? iterable[Symbol.asyncIterator]() : typeof iterable === "string" || iterable instanceof Uint8Array ? [iterable][Symbol.iterator]() : iterable[Symbol.iterator]();
    const stream = new Readable({ objectMode: true, ...options });
    stream._read = function () {
      const next = iterator.next();
      if (next instanceof Promise) {
        next.then(
          (result) => stream.push(result.done ? null : result.value),
          (error) => stream.destroy(error),
        );
      } else stream.push(next.done ? null : next.value);
    };
    return stream;
  }
}

const writableMethods = {
  _initWritable(options) {
    this._writeQueue = [];
    this._writing = false;
    this._ending = false;
    this._finished = false;
    this.writable = true;
    this._decodeStrings = options.decodeStrings !== false;
    this._writableObjectMode = Boolean(options.objectMode || options.writableObjectMode);
    if (typeof options.write === "function") this._write = options.write;
    if (typeof options.final === "function") this._final = options.final;
  },
  write(chunk, encoding, callback) {
    if (typeof encoding === "function") [callback, encoding] = [encoding, undefined];
    if (this._ending) {
      const error = codedError(Error, "ERR_STREAM_WRITE_AFTER_END", "write after end");
      nextTick(() => {
        callback?.(error);
        this.emit("error", error);
      });
      return false;
    }
    if (typeof chunk === "string" && this._decodeStrings && !this._writableObjectMode) chunk = Buffer.from(chunk, encoding);
    this._writeQueue.push([chunk, encoding ?? "buffer", callback]);
    this._drainWrites();
    return true;
  },
  _drainWrites() {
    if (this._writing) return;
    const next = this._writeQueue.shift();
    if (!next) {
      if (this._ending && !this._finished) this._finishWrites();
      return;
    }
    this._writing = true;
    const [chunk, encoding, callback] = next;
    this._write(chunk, encoding, (error) => {
      this._writing = false;
      callback?.(error ?? null);
      if (error) {
        this.emit("error", error);
        return;
      }
      this._drainWrites();
    });
  },
  _finishWrites() {
    this._finished = true;
    const done = (error) => {
      if (error) {
        this.emit("error", error);
        return;
      }
      this.writable = false;
      nextTick(() => {
        this.emit("finish");
        if (!(this instanceof Readable)) this.emit("close");
      });
    };
    if (typeof this._final === "function") this._final(done);
    else done();
  },
  end(chunk, encoding, callback) {
    if (typeof chunk === "function") [callback, chunk] = [chunk, undefined];
    if (typeof encoding === "function") [callback, encoding] = [encoding, undefined];
    if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
    if (callback) this.once("finish", callback);
    this._ending = true;
    this._drainWrites();
    return this;
  },
  cork() {},
  uncork() {},
  setDefaultEncoding() {
    return this;
  },
};

class Writable extends EventEmitter {
  constructor(options = {}) {
    super();
    this._initWritable(options);
    this.destroyed = false;
  }
  _write(_chunk, _encoding, callback) {
    callback();
  }
  destroy(error) {
    this.destroyed = true;
    nextTick(() => {
      if (error) this.emit("error", error);
      this.emit("close");
    });
    return this;
  }
}
Object.assign(Writable.prototype, writableMethods);

class Duplex extends Readable {
  constructor(options = {}) {
    super(options);
    this._initWritable(options);
  }
  _write(_chunk, _encoding, callback) {
    callback();
  }
}
Object.assign(Duplex.prototype, writableMethods);

class Transform extends Duplex {
  constructor(options = {}) {
    super(options);
    if (typeof options.transform === "function") this._transform = options.transform;
    if (typeof options.flush === "function") this._flush = options.flush;
  }
  _transform(chunk, _encoding, callback) {
    callback(null, chunk);
  }
  _write(chunk, encoding, callback) {
    this._transform(chunk, encoding, (error, data) => {
      if (data !== undefined && data !== null) this.push(data);
      callback(error);
    });
  }
  _final(callback) {
    const end = (error, data) => {
      if (data !== undefined && data !== null) this.push(data);
      this.push(null);
      callback(error);
    };
    if (typeof this._flush === "function") this._flush(end);
    else end();
  }
}

class PassThrough extends Transform {}

function finished(stream, callback) {
  let called = false;
  const done = (error) => {
    if (!called) {
      called = true;
      callback(error ?? undefined);
    }
  };
  stream.once("error", done);
  stream.once("end", () => done());
  stream.once("finish", () => done());
  stream.once("close", () => done());
  return () => {};
}

function pipeline(...streams) {
  const callback = typeof streams[streams.length - 1] === "function" ? streams.pop() : () => {};
  if (Array.isArray(streams[0])) streams = streams[0];
  let called = false;
  const done = (error) => {
    if (!called) {
      called = true;
      callback(error);
    }
  };
  for (let i = 0; i < streams.length; i++) {
    streams[i].once("error", done);
    if (i + 1 < streams.length) streams[i].pipe(streams[i + 1]);
  }
  const last = streams[streams.length - 1];
  last.once(last instanceof Writable || last instanceof Duplex ? "finish" : "end", () => done());
  return last;
}

const streamPromises = {
  pipeline: (...streams) => new Promise((resolve, reject) => pipeline(...streams, (error) => (error ? reject(error) : resolve()))),
  finished: (stream) => new Promise((resolve, reject) => finished(stream, (error) => (error ? reject(error) : resolve()))),
};

const streamModule = Object.assign(
  class Stream extends EventEmitter {
    pipe(destination) {
      return Readable.prototype.pipe.call(this, destination);
    }
  },
  { Readable, Writable, Duplex, Transform, PassThrough, pipeline, finished, promises: streamPromises },
);
streamModule.Stream = streamModule;

// ---- querystring --------------------------------------------------------------------------------

const querystring = {
  escape: (text) => encodeURIComponent(text),
  unescape(text) {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  },
  parse(text, sep = "&", eq = "=", options = {}) {
    const out = Object.create(null);
    if (typeof text !== "string" || text === "") return out;
    const max = options.maxKeys ?? 1000;
    const parts = text.split(sep);
    for (const part of max > 0 ? parts.slice(0, max) : parts) {
      const index = part.indexOf(eq);
      const rawKey = index < 0 ? part : part.slice(0, index);
      const rawValue = index < 0 ? "" : part.slice(index + eq.length);
      const key = querystring.unescape(rawKey.replace(/\+/g, " "));
      const value = querystring.unescape(rawValue.replace(/\+/g, " "));
      if (!(key in out)) out[key] = value;
      else if (Array.isArray(out[key])) out[key].push(value);
      else out[key] = [out[key], value];
    }
    return out;
  },
  stringify(object, sep = "&", eq = "=") {
    if (object === null || typeof object !== "object") return "";
    const encode = (value) =>
      typeof value === "string" || typeof value === "number" || typeof value === "bigint" || typeof value === "boolean"
        ? querystring.escape(String(value))
        : "";
    return Object.keys(object)
      .map((key) => {
        const value = object[key];
        if (Array.isArray(value)) return value.map((v) => `${querystring.escape(key)}${eq}${encode(v)}`).join(sep);
        return `${querystring.escape(key)}${eq}${encode(value)}`;
      })
      .filter(Boolean)
      .join(sep);
  },
};
querystring.decode = querystring.parse;
querystring.encode = querystring.stringify;

// ---- module -------------------------------------------------------------------------------------

const moduleModule = {
  // `createRequire(import.meta.url)`: requires resolved (at build time) from that module.
  createRequire(from) {
    const text = String(from instanceof URL ? from.href : from).replace(/^file:\/\//, "");
    return requireFrom(host.moduleKind(text) ? text : text.replace(/^\/+/, ""));
  },
  isBuiltin: (name) => Object.hasOwn(builtinModules, String(name).replace(/^node:/, "")),
  get builtinModules() {
    return Object.keys(builtinModules);
  },
};

// ---- built-in modules and require ---------------------------------------------------------------

const builtinModules = {
  assert: assertModule,
  "assert/strict": assertModule.strict,
  buffer: bufferModule,
  console,
  crypto: cryptoModule,
  events: EventEmitter,
  fs,
  "fs/promises": fsPromises,
  module: moduleModule,
  perf_hooks: { performance: globalThis.performance },
  querystring,
  stream: streamModule,
  "stream/promises": streamPromises,
  os,
  path,
  "path/posix": path,
  process: processObject,
  string_decoder: { StringDecoder },
  timers: timersModule,
  "timers/promises": timersPromises,
  url: urlModule,
  util,
  "util/types": types,
};

function builtin(name) {
  const module = builtinModules[name];
  if (module === undefined) throw codedError(Error, "ERR_UNKNOWN_BUILTIN_MODULE", `the Node built-in \`${name}\` is not available in the sandbox`);
  return module;
}

const cjsCache = new Map();

function requireFrom(base) {
  const require = function require(specifier) {
    specifier = String(specifier);
    const target = host.resolveDep(base, specifier);
    if (target === null || target === undefined) {
      const bare = specifier.startsWith("node:") ? specifier.slice(5) : specifier;
      if (Object.hasOwn(builtinModules, bare)) return builtinModules[bare];
      throw codedError(Error, "MODULE_NOT_FOUND", `Cannot find module '${specifier}' from '${base}': it is not part of the task's module graph (only require() calls with a string literal are built in)`);
    }
    return requireId(target);
  };
  require.resolve = (specifier) => {
    const target = host.resolveDep(base, String(specifier));
    if (target === null || target === undefined || target.startsWith("!")) throw codedError(Error, "MODULE_NOT_FOUND", `Cannot find module '${specifier}'`);
    return target.startsWith("node:") || target === "capsule" ? target : `/${target.replace(/^\//, "")}`;
  };
  require.cache = {};
  return require;
}

function requireId(id) {
  if (id.startsWith("!")) throw codedError(Error, "MODULE_NOT_FOUND", id.slice(1));
  if (id.startsWith("node:")) return builtin(id.slice(5));
  if (id === "capsule") return host.importSync("capsule");
  const cached = cjsCache.get(id);
  if (cached) return cached.exports;
  const kind = host.moduleKind(id);
  if (kind === "esm") return host.importSync(id);
  const filename = id.startsWith("/") ? id : `/${id}`;
  const module = { id: filename, filename, path: path.dirname(filename), exports: {}, loaded: false, children: [], paths: [] };
  cjsCache.set(id, module);
  if (kind === "json") {
    module.exports = JSON.parse(host.moduleSource(id));
  } else if (kind === "cjs") {
    module.require = requireFrom(id);
    const wrapper = host.compileCjs(id);
    try {
      wrapper.call(module.exports, module.exports, module.require, module, filename, module.path);
    } catch (error) {
      cjsCache.delete(id);
      throw error;
    }
  } else {
    cjsCache.delete(id);
    throw codedError(Error, "MODULE_NOT_FOUND", `Cannot find module '${id}'`);
  }
  module.loaded = true;
  return module.exports;
}

// Stack frames of transpiled TypeScript name the original line (`file.ts:12`).
function mapStack(stack) {
  if (typeof stack !== "string") return stack;
  return stack.replace(/([^\s()]+):(\d+):(\d+)/g, (match, file, line) => {
    const original = host.originalLine(file, Number(line));
    return original < 0 ? match : `${file}:${original}`;
  });
}

Object.defineProperty(globalThis, "__capsule_modules", {
  value: Object.freeze({ builtin, requireId, runTicks, turn, endInit, initWarnings, mapStack, EXIT }),
  enumerable: false,
});
