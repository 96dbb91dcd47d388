/** Capsule's host SDK: run tasks and code in WebAssembly sandboxes through `capsule worker`. */

/** A duration: `"500ms"`, `"30s"`, `"5m"`, or seconds. */
export type Duration = string | number;

/** The envelope `capsule exec --json` prints, with capsule-run's `retries` and `ram_used`. */
export interface Envelope {
  success: boolean;
  result: unknown;
  error: { error_type: string; message: string; traceback?: string | null } | null;
  execution: Execution;
  output?: { stdout: string; stderr: string; dropped_bytes?: number };
}

export interface Execution {
  task_name?: string;
  duration_ms?: number;
  attempts?: number;
  /** capsule-run's name: attempts - 1. */
  retries?: number;
  fuel_consumed?: number;
  peak_memory_bytes?: number;
  /** capsule-run's name: peak memory in bytes. */
  ram_used?: number;
  host_requests?: unknown[];
  subtasks?: unknown[];
  [key: string]: unknown;
}

export interface ErrorInfo {
  /** `task_error`, `timeout`, `out_of_fuel`, `memory_limit`, `cancelled`, `session_lost`... */
  errorType: string;
  message: string;
  traceback: string | null;
}

/** One call's outcome. For `runCode`, `result` is the cell's value when it is JSON. */
export declare class Result {
  success: boolean;
  result: unknown;
  error: ErrorInfo | null;
  stdout: string;
  stderr: string;
  execution: Execution;
  /** `json`, `repr` or `none` (cells only). */
  format: string | null;
  /** The value's printable form (cells only). */
  repr: string | null;
  readonly envelope: Envelope;
  toJSON(): Envelope;
}

export interface RunOptions {
  file: string;
  args?: unknown[];
  /** Not supported by the worker: throws when non-empty. */
  mounts?: string[];
  cwd?: string;
  capsulePath?: string;
  task?: string;
  kwargs?: Record<string, unknown>;
  timeout?: Duration;
}

/** capsule-run's `run()`: resolves to the envelope. */
export declare function run(options: RunOptions): Promise<Envelope>;

export interface TaskOptions {
  name?: string;
  compute?: "LOW" | "MEDIUM" | "HIGH" | string | number;
  ram?: string;
  timeout?: string;
  maxRetries?: number;
  allowedFiles?: Array<string | { path: string; mode?: string }>;
  allowedHosts?: string[];
  envVariables?: string[];
  /** Bytes the task may add to its writable directories, all together ("100MB"); writes past it fail with ENOSPC. */
  disk?: string | number;
}

/** Declares a task; on the host the returned function calls `fn` natively. */
export declare function task<F extends (...args: any[]) => any>(options: TaskOptions, fn: F): F;
export declare function task<F extends (...args: any[]) => any>(fn: F): F;

export interface ClientOptions {
  binary?: string;
  trust?: string | string[];
  allowUnsigned?: boolean;
  maxInFlight?: number;
  requestTimeout?: Duration;
  /** Seconds added to a call's timeout before the client gives up on the worker (5). */
  grace?: number;
  cwd?: string;
  env?: Record<string, string>;
}

export interface OutputCallbacks {
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  /** Aborting cancels the call in the worker and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface Grants {
  timeout?: Duration;
  ram?: string;
  compute?: string | number;
  allowHosts?: string[];
  env?: Record<string, string>;
}

export interface TaskCallOptions extends OutputCallbacks {
  task?: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  timeout?: Duration;
}

export interface RunCodeOptions extends OutputCallbacks, Grants {
  language?: "python" | "javascript";
}

export interface SessionOptions extends Grants {
  language?: "python" | "javascript";
  /** What the session's `/workspace` may hold (`"100MB"`; default 1GiB): a write past it fails with ENOSPC. */
  disk?: string;
}

export interface FileInfo {
  path: string;
  type: "file" | "dir" | "symlink";
  size: number;
}

export declare class Files {
  write(path: string, data: string | Uint8Array): Promise<number>;
  read(path: string): Promise<Buffer>;
  readText(path: string): Promise<string>;
  list(path?: string): Promise<FileInfo[]>;
  remove(path: string): Promise<void>;
}

export declare class Session {
  readonly id: string;
  readonly language: string;
  readonly closed: boolean;
  readonly files: Files;
  runCode(code: string, options?: OutputCallbacks & { timeout?: Duration; compute?: string | number }): Promise<Result>;
  reset(): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A client of one long-lived `capsule worker`, restarted if it dies. */
export declare class Capsule {
  constructor(options?: ClientOptions);
  readonly workerPid: number | null;
  readonly protocol: number;
  start(): Promise<unknown>;
  run(bundleOrFile: string, options?: TaskCallOptions): Promise<Result>;
  runCode(code: string, options?: RunCodeOptions): Promise<Result>;
  createSession(options?: SessionOptions): Promise<Session>;
  status(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export declare class TaskError extends Error {
  errorType: string;
  traceback: string;
}
export declare class CapsuleError extends Error {}
export declare class WorkerError extends CapsuleError {}
export declare class DeadlineExceeded extends WorkerError {}
export declare class OperationError extends CapsuleError {
  errorType: string;
  detail: string;
}
export declare class UnsupportedError extends CapsuleError {}
export declare class BuildError extends CapsuleError {}
export declare function findBinary(explicit?: string): string;
