// Capsule's JavaScript code interpreter (`capsule run-code`, the worker's `run_code`).
//
// Built by Capsule's own pipeline like any task. A cell is a global, non-strict script: its
// completion value (the value of its last expression statement) is the result, `await` works at
// the top level, and its declarations stay global. `main` runs one cell in a fresh instance of
// the snapshot; `session_cell` runs the cells of a worker session in the session's one live
// instance, so a cell's `let`, `const`, `function` and `class` declarations are there for the
// next. The limits below are the most a call may have; `run-code` and the worker narrow them to
// their documented defaults, and grant hosts per call or session (none by default).
import { evaluateCell, task } from "capsule";

const LIMITS = { compute: "HIGH", ram: "2GiB", timeout: "5m", allowedHosts: ["*"] };

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

// A cell's error shows the cell's own frames, named after the cell, not the interpreter's.
// (QuickJS names the frames of an evaluated script `eval_script`.)
function cellFramesOnly(error, filename) {
  if (error instanceof Error && typeof error.stack === "string") {
    const frames = error.stack
      .split("\n")
      .map((line) => line.replace(/\((?:eval_script|<cell[^>]*>):/, `(${filename}:`))
      .filter((line) => !/^\s+at /.test(line) || line.includes(`(${filename}:`));
    try {
      error.stack = frames.join("\n");
    } catch {
      // a frozen error keeps its stack
    }
  }
  return error;
}

async function runCell(code, filename) {
  try {
    return valueDocument(await evaluateCell(code, filename));
  } catch (error) {
    throw cellFramesOnly(error, filename);
  }
}

export const run_code = task({ name: "main", ...LIMITS }, (code) => runCell(code, "<cell>"));

let sessionCells = 0;

export const session_cell = task({ name: "session_cell", ...LIMITS }, (code) => {
  sessionCells += 1;
  return runCell(code, `<cell ${sessionCells}>`);
});
