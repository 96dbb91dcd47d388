"use strict";
/** Request fields shared by stateless cells and sessions: limits and grants. */
const { toText } = require("./duration.cjs");

/** A list of strings from undefined, a string, or an array. */
function strings(value, what) {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return [value];
  if (!Array.isArray(value)) throw new TypeError(`\`${what}\` must be a string or an array of strings`);
  return value.map(String);
}

/** Adds `timeout`, `ram`, `compute`, `allowHosts` and `env` from `options` to `message`. */
function limits(message, options) {
  const { timeout, ram, compute, allowHosts, env } = options;
  if (timeout !== undefined) message.timeout = toText(timeout);
  if (ram !== undefined) message.ram = String(ram);
  if (compute !== undefined) message.compute = String(compute);
  if (allowHosts !== undefined) message.allow_hosts = strings(allowHosts, "allowHosts");
  if (env !== undefined) {
    if (env === null || typeof env !== "object" || Array.isArray(env)) throw new TypeError("`env` must be an object of strings");
    message.env = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  }
}

module.exports = { limits, strings };
