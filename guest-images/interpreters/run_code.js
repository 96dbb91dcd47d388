// Capsule's JavaScript code interpreter (`capsule run-code`, the worker's `run_code`).
//
// Built by Capsule's own pipeline like any task; each call runs one cell in a fresh instance of the
// snapshot. A cell is a script: its completion value (the value of the last expression statement)
// is the result; `await` works at the top level. The
// limits below are the most a call may have; `run-code` narrows them to its documented defaults.
import { evaluateCell, task } from "capsule";

const indirectEval = eval;

function valueDocument(value) {
  if (value === undefined || value === null) {
    return { format: "none", value: null, repr: value === null ? "null" : null };
  }
  let repr;
  try {
    repr = typeof value === "string" ? JSON.stringify(value) : String(value);
  } catch {
    repr = Object.prototype.toString.call(value);
  }
  try {
    const text = JSON.stringify(value);
    if (text !== undefined) {
      return { format: "json", value: JSON.parse(text), repr };
    }
  } catch {
    // not JSON: cycles, BigInt, functions
  }
  return { format: "repr", value: null, repr };
}

async function evaluate(code) {
  try {
    return await indirectEval(code);
  } catch (error) {
    const topLevelAwait = error instanceof SyntaxError && /\bawait\b/.test(code);
    if (!topLevelAwait) throw error;
    // A script with top-level await: QuickJS evaluates it as such, completion value included.
    return await evaluateCell(code);
  }
}

export const run_code = task(
  { name: "run_code", compute: "HIGH", ram: "2GiB", timeout: "5m" },
  async (code) => valueDocument(await evaluate(code)),
);
