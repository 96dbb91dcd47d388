"use strict";
/**
 * capsule-run's `run({ file, args })`: resolves to the envelope object (with capsule-run's
 * `execution.retries` and `execution.ram_used`). Calls share one client per (binary, cwd) for
 * the life of the process; its worker does not keep Node running while idle.
 */
const path = require("node:path");
const { Capsule } = require("./client.cjs");

const clients = new Map();

/**
 * Runs the `main` task (or `task`) of `file` (a `.py`/`.js`/`.ts` source, built and cached, or
 * a `.capsule` bundle) with `args`. `cwd` resolves `file` and the task's directories.
 */
async function run(options) {
  if (options === null || typeof options !== "object") throw new TypeError("run({ file, args }): options must be an object");
  const { file, args = [], mounts, cwd, capsulePath, task, kwargs, timeout } = options;
  if (typeof file !== "string") throw new TypeError("run({ file }): `file` must be a string");
  if (mounts && mounts.length) {
    throw new TypeError("`mounts` are not supported by the worker; declare the directories in the task's `allowedFiles`");
  }
  const dir = path.resolve(cwd ?? process.cwd());
  const key = `${capsulePath ?? ""}\0${dir}`;
  let client = clients.get(key);
  if (!client) {
    client = new Capsule({ binary: capsulePath, cwd: dir });
    clients.set(key, client);
  }
  const result = await client.run(file, { task, args, kwargs, timeout });
  return result.toJSON();
}

module.exports = { run };
