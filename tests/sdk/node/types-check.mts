// Type-checked by tsc against the package's .d.ts (not run).
import { Capsule, run, task, type Result, type Envelope } from "capsule";
import { run as runnerRun } from "capsule/runner";

export const main = task({ name: "main", compute: "LOW", ram: "64MB" }, (code: string): string => code);
const length: string = main("x");

export async function example(): Promise<number> {
  const envelope: Envelope = await run({ file: "./sandbox.ts", args: ["1 + 1"] });
  const again: Envelope = await runnerRun({ file: "./sandbox.ts" });
  const capsule = new Capsule({ maxInFlight: 8, grace: 2 });
  const cell: Result = await capsule.runCode("1 + 1", { language: "python", timeout: "5s", onStdout: (t: string) => void t });
  const session = await capsule.createSession({ language: "javascript", ram: "128MB", disk: "100MB" });
  await session.files.write("a.txt", "x");
  const bytes: Buffer = await session.files.read("a.txt");
  await session.close();
  await capsule.close();
  return (cell.error?.errorType.length ?? 0) + bytes.length + length.length + Number(envelope.success) + Number(again.success);
}
