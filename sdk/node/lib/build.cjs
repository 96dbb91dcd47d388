"use strict";
/**
 * Turning a task source into a bundle: `capsule build FILE --reuse --sign KEY` builds once per
 * content (the cache `capsule run` uses, one entry per signer), then only prints the cached path.
 * KEY is this user's local SDK key (made once with `capsule keygen`), which the worker trusts.
 */
const { execFile } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { BuildError, CapsuleError } = require("./errors.cjs");

/** The task files `capsule build` accepts. */
const SOURCE_SUFFIXES = [".py", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts"];

/** Whether `file` names a task source rather than a bundle. */
function isSource(file) {
  return SOURCE_SUFFIXES.includes(path.extname(file));
}

/** Capsule's cache directory, as the binary computes it. */
function cacheDir(env = process.env) {
  if (env.CAPSULE_CACHE_DIR) return env.CAPSULE_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "capsule");
}

function hostTarget() {
  return { x64: "x86_64", arm64: "aarch64" }[process.arch] ?? process.arch;
}

class Builder {
  constructor(binary, env) {
    this.binary = binary;
    this.env = env;
    this.key = path.join(cacheDir(env ?? process.env), "sdk", "local.key");
    this.keyReady = null;
    this.building = new Map();
  }

  /** The public half of the local SDK key. */
  get publicKey() {
    return `${this.key}.pub`;
  }

  /** Creates the local SDK key on first use; resolves to its public key file. */
  ensureKey() {
    this.keyReady ??= (async () => {
      if (fs.existsSync(this.publicKey)) return this.publicKey;
      fs.mkdirSync(path.dirname(this.key), { recursive: true });
      // Another process may create it at the same moment: keygen privately, then rename.
      const staging = path.join(path.dirname(this.key), `local.${process.pid}.key`);
      await this.capsule(["keygen", "-o", staging]);
      fs.renameSync(staging, this.key);
      fs.renameSync(`${staging}.pub`, this.publicKey);
      return this.publicKey;
    })().catch((error) => {
      this.keyReady = null;
      throw error;
    });
    return this.keyReady;
  }

  /** The bundle for `source` (absolute), built or taken from the cache. */
  bundle(source) {
    let running = this.building.get(source);
    if (!running) {
      running = this.build(source).finally(() => this.building.delete(source));
      this.building.set(source, running);
    }
    return running;
  }

  async build(source) {
    await this.ensureKey();
    const out = await this.capsule(
      ["build", source, "--reuse", "--sign", this.key, "--target", hostTarget()],
      path.dirname(source),
    );
    const lines = out.trim().split("\n");
    if (!lines[lines.length - 1]) throw new BuildError(`\`capsule build ${source}\` printed no bundle path`);
    return lines[lines.length - 1];
  }

  capsule(args, cwd) {
    return new Promise((resolve, reject) => {
      execFile(this.binary, args, { cwd, env: this.env, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        if (typeof error.code === "string") return reject(new CapsuleError(`cannot start \`${this.binary}\`: ${error.message}`));
        reject(new BuildError(stderr.trim() || `\`capsule ${args[0]}\` failed with exit status ${error.code}`));
      });
    });
  }
}

module.exports = { Builder, isSource, cacheDir, SOURCE_SUFFIXES };
