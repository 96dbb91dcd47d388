"use strict";
// `capsule/runner`: capsule-run's `@capsule-run/sdk/runner` entry (`run` only).
module.exports = { run: require("./lib/run.cjs").run };
