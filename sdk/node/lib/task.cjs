"use strict";
/**
 * `task()` on the host: task files import it from "capsule" (or "@capsule-run/sdk"); inside the
 * sandbox the guest's own module takes its place. Here it checks its options and returns a
 * function calling `fn` natively, so task files can be unit tested with any test runner.
 */

/** The options a task accepts (the guest SDK and the compiler accept the same). */
const OPTIONS = ["compute", "ram", "timeout", "maxRetries", "allowedFiles", "allowedHosts", "envVariables", "disk"];

/** Declares `fn` as a Capsule task: `task({ name: "main", compute: "LOW" }, fn)` or `task(fn)`. */
function task(options, fn) {
  if (typeof options === "function" && fn === undefined) {
    fn = options;
    options = {};
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError("task(options, fn): options must be an object");
  }
  if (typeof fn !== "function") throw new TypeError("task(options, fn): fn must be a function");
  const unknown = Object.keys(options).filter((key) => key !== "name" && !OPTIONS.includes(key));
  if (unknown.length) {
    throw new TypeError(`task() got unknown option(s) ${unknown.join(", ")}; accepted: name, ${OPTIONS.join(", ")}`);
  }
  if (options.name !== undefined && typeof options.name !== "string") {
    throw new TypeError("task({ name }) must be a string");
  }
  const wrapper = function (...args) {
    return fn.apply(this, args);
  };
  Object.defineProperty(wrapper, "name", { value: options.name ?? fn.name });
  Object.defineProperty(wrapper, "taskOptions", { value: Object.freeze({ ...options }) });
  return wrapper;
}

/** A task failed; `errorType` says how. */
class TaskError extends Error {
  constructor(errorType, message, traceback = "") {
    super(message);
    this.name = "TaskError";
    this.errorType = errorType;
    this.traceback = traceback;
  }
}

module.exports = { task, TaskError };
