// Drives the Node SDK for ci/bench/sdk.sh: sequential `1+1` cells through Capsule.runCode, timed
// on the caller's side. Run from a project where the capsule npm package is installed.
// Prints {"client": "node", "language", "calls", "p50_ms", "p99_ms"}.
import { Capsule } from "capsule";

const [language = "python", count = "200", warmup = "10"] = process.argv.slice(2);
const percentile = (values, p) => {
  const ordered = [...values].sort((a, b) => a - b);
  return ordered[Math.min(ordered.length - 1, Math.round((p / 100) * (ordered.length - 1)))];
};
const capsule = new Capsule();
const call = async () => {
  const result = await capsule.runCode("1+1", { language });
  if (result.result !== 2) throw new Error(`unexpected answer: ${JSON.stringify(result)}`);
};
for (let i = 0; i < Number(warmup); i++) await call();
const samples = [];
for (let i = 0; i < Number(count); i++) {
  const started = process.hrtime.bigint();
  await call();
  samples.push(Number(process.hrtime.bigint() - started) / 1e6);
}
await capsule.close();
const round = (x) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({ client: "node", language, calls: samples.length, p50_ms: round(percentile(samples, 50)), p99_ms: round(percentile(samples, 99)) }));
