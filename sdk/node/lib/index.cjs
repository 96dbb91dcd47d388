"use strict";
/**
 * Capsule's host SDK for Node: run Python/JavaScript tasks and code in WebAssembly sandboxes
 * through one long-lived `capsule worker`.
 *
 *   const { run, Capsule } = require("capsule");
 *   const envelope = await run({ file: "./sandbox.ts", args: ["1 + 1"] });
 *   const capsule = new Capsule();
 *   (await capsule.runCode("[1, 2].map(x => x * 2)", { language: "javascript" })).result;
 */
const { Capsule } = require("./client.cjs");
const { Session, Files } = require("./session.cjs");
const { Result } = require("./result.cjs");
const { run } = require("./run.cjs");
const { task, TaskError } = require("./task.cjs");
const errors = require("./errors.cjs");
const { findBinary } = require("./binary.cjs");

module.exports = { run, task, TaskError, Capsule, Session, Files, Result, findBinary, ...errors };
