// The CommonJS entry point exposes the same objects as the ES module one.
const assert = require("node:assert/strict");
const { test } = require("node:test");

test("require('capsule') and require('capsule/runner')", async () => {
  const sdk = require("capsule");
  const esm = await import("capsule");
  assert.equal(sdk.Capsule, esm.Capsule);
  assert.equal(typeof sdk.run, "function");
  assert.equal(require("capsule/runner").run, sdk.run);
  const capsule = new sdk.Capsule();
  assert.equal(typeof capsule[Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")], "function");
});
