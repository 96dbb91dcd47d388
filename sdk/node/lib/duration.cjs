"use strict";
/** Durations as the CLI writes them (`"500ms"`, `"30s"`, `"5m"`), or seconds as a number. */

const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;

/** Seconds in `value`; a bad value throws a `RangeError` naming `what`. */
function toSeconds(value, what = "timeout") {
  if (typeof value === "number" && Number.isFinite(value) && value > 0) return value;
  if (typeof value === "string") {
    const match = PATTERN.exec(value);
    if (match && Number(match[1]) > 0) return Number(match[1]) * UNITS[match[2]];
  }
  throw new RangeError(
    `invalid \`${what}\`: ${JSON.stringify(value)}; expected seconds or a string like "500ms", "30s", "5m"`,
  );
}

/** The worker's form of `value` (whole milliseconds). */
function toText(value, what = "timeout") {
  return `${Math.max(1, Math.round(toSeconds(value, what) * 1000))}ms`;
}

module.exports = { toSeconds, toText };
