// Native baseline for ci/bench/worker.sh: runs a workload task of tasks/workload.js under node (the
// `capsule` import resolved to a pass-through `task`) and prints the median milliseconds of RUNS
// calls.   node native.mjs TASK N RUNS
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [name, n, runs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const dir = mkdtempSync(join(tmpdir(), "capsule-native-"));
try {
  mkdirSync(join(dir, "node_modules", "capsule"), { recursive: true });
  writeFileSync(join(dir, "node_modules", "capsule", "package.json"), '{"name":"capsule","type":"module","main":"index.js"}');
  writeFileSync(join(dir, "node_modules", "capsule", "index.js"),
    "export const task = (_options, fn) => fn;\nexport const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n");
  copyFileSync(join(dirname(fileURLToPath(import.meta.url)), "tasks", "workload.js"), join(dir, "workload.mjs"));
  const workload = await import(pathToFileURL(join(dir, "workload.mjs")).href);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    workload[name](n);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(times[Math.floor(times.length / 2)].toFixed(3));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
