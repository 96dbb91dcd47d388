// ESM entry point: the same objects as the CommonJS one (one implementation, no dual state).
import sdk from "./lib/index.cjs";

export const {
  run,
  task,
  TaskError,
  Capsule,
  Session,
  Files,
  Result,
  findBinary,
  CapsuleError,
  WorkerError,
  DeadlineExceeded,
  OperationError,
  UnsupportedError,
  BuildError,
} = sdk;
export default sdk;
