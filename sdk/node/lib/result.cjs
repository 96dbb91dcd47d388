"use strict";
/** Results: the worker's JSON envelope as an object, plus capsule-run's field names. */

/**
 * Adds capsule-run's `execution.retries` (attempts - 1) and `execution.ram_used` (peak memory in
 * bytes) to a copy of `envelope`.
 */
function withAliases(envelope) {
  const execution = { ...(envelope.execution ?? {}) };
  if ("attempts" in execution && !("retries" in execution)) {
    execution.retries = Math.max(0, Number(execution.attempts) - 1);
  }
  if ("peak_memory_bytes" in execution && !("ram_used" in execution)) {
    execution.ram_used = execution.peak_memory_bytes;
  }
  return { ...envelope, execution };
}

/**
 * One call's outcome: `success`, `result` (for `runCode`, the cell's value when it is JSON, with
 * `format` and `repr`), `error` (`{errorType, message, traceback}`), `stdout`, `stderr`,
 * `execution` (metrics, snake_case as in the envelope), and the whole `envelope`.
 */
class Result {
  constructor(envelope, cell = false) {
    envelope = withAliases(envelope);
    const error = envelope.error;
    const output = envelope.output ?? {};
    let value = envelope.result ?? null;
    this.format = null;
    this.repr = null;
    if (cell && value !== null && typeof value === "object" && !Array.isArray(value)) {
      this.format = value.format ?? null;
      this.repr = value.repr ?? null;
      value = value.value ?? null;
    }
    this.success = Boolean(envelope.success);
    this.result = value;
    this.error = error
      ? { errorType: String(error.error_type ?? "internal"), message: String(error.message ?? ""), traceback: error.traceback ?? null }
      : null;
    this.stdout = String(output.stdout ?? "");
    this.stderr = String(output.stderr ?? "");
    this.execution = envelope.execution;
    Object.defineProperty(this, "envelope", { value: envelope, enumerable: false });
  }

  /** The envelope (what `capsule exec --json` prints, with the aliases). */
  toJSON() {
    return this.envelope;
  }
}

/** A result from an answer that carries an `error` instead of an envelope. */
function failedEnvelope(errorType, message) {
  return { success: false, result: null, error: { error_type: errorType, message }, execution: {}, output: { stdout: "", stderr: "" } };
}

module.exports = { Result, withAliases, failedEnvelope };
