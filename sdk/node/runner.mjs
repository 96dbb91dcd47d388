// `capsule/runner`: capsule-run's `@capsule-run/sdk/runner` entry (`run` only).
import sdk from "./lib/index.cjs";

export const { run } = sdk;
