export { run, RunOptions, Envelope } from "./index";
