"use strict";
/** Finding the `capsule` binary this SDK drives. */
const fs = require("node:fs");
const path = require("node:path");
const { WorkerError } = require("./errors.cjs");

/** The binary shipped inside this package (`bin/capsule`, with `share/capsule/interpreters/`). */
const SHIPPED = path.join(__dirname, "..", "bin", process.platform === "win32" ? "capsule.exe" : "capsule");

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The `capsule` executable: `explicit`, else `$CAPSULE_BIN`, else the one shipped in this
 * package, else `capsule` on `PATH` (an activated virtualenv holding the capsule wheel included).
 */
function findBinary(explicit) {
  for (const candidate of [explicit, process.env.CAPSULE_BIN]) {
    if (candidate) {
      const found = candidate.includes(path.sep) ? candidate : searchPath(candidate);
      if (!found || !isFile(found)) throw new WorkerError(`the capsule binary \`${candidate}\` does not exist`);
      return found;
    }
  }
  if (isFile(SHIPPED)) return SHIPPED;
  const found = searchPath("capsule");
  if (found) return found;
  throw new WorkerError(
    "cannot find the `capsule` binary: install a package that ships it, put `capsule` on PATH, or set CAPSULE_BIN",
  );
}

function searchPath(name) {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && isFile(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

module.exports = { findBinary, SHIPPED };
