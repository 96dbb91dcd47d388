import { task } from "capsule";

export const main = task({}, () => ({ ok: true }));
