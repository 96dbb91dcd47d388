// The compute workloads of ci/bench/worker.sh; native.mjs runs the same functions under node.
import { task, sleep } from "capsule";

const MODULUS = 1000000007;
const EMAIL = /[\w.+-]+@[\w-]+\.[\w.]+/g;

export const sumsq = task({ compute: 1e12, timeout: "5m" }, (n) => {
  let total = 0;
  for (let i = 0; i < n; i++) total = (total + ((i * i) % MODULUS)) % MODULUS;
  return total;
});

export const json_roundtrip = task({ compute: 1e12, timeout: "5m" }, (n) => {
  let records = [];
  for (let i = 0; i < n; i++) records.push({ id: i, name: `user${i}`, tags: ["a", "b", String(i % 7)], score: i / 3 });
  for (let k = 0; k < 10; k++) records = JSON.parse(JSON.stringify(records));
  return records.length;
});

export const regex = task({ compute: 1e12, timeout: "5m" }, (n) => {
  const lines = [];
  for (let i = 0; i < n; i++) lines.push(`user${i}@example.com visited /page/${i} at ${i % 24}:${i % 60}`);
  return (lines.join("\n").match(EMAIL) || []).length;
});

export const nap = task({ timeout: "1m" }, async (ms) => {
  await sleep(ms);
  return ms;
});

export const main = task({}, () => ["sumsq", "json_roundtrip", "regex", "nap"]);
