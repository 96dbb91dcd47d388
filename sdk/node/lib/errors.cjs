"use strict";
/**
 * Exceptions of the host SDK. What the sandbox reports (a task that raised, hit a limit, was
 * cancelled) is a `Result`; these are for the cases without such an answer: the worker could not
 * start, died, or missed the client-side deadline, and refused operations without an envelope.
 */

/** Base class of the SDK's errors. */
class CapsuleError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The `capsule worker` process could not start, died, or broke the protocol. */
class WorkerError extends CapsuleError {}

/** No answer arrived by the client-side deadline (the call's timeout plus the grace period). */
class DeadlineExceeded extends WorkerError {}

/** The worker refused an op that answers without an envelope (`files.*`, `session.open`...). */
class OperationError extends CapsuleError {
  constructor(errorType, message) {
    super(`${errorType}: ${message}`);
    this.errorType = errorType;
    this.detail = message;
  }
}

/** The running worker does not know this op (older protocol). */
class UnsupportedError extends CapsuleError {}

/** A task source failed to build; nothing ran. The message is the compiler's. */
class BuildError extends CapsuleError {}

module.exports = { CapsuleError, WorkerError, DeadlineExceeded, OperationError, UnsupportedError, BuildError };
