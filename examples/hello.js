// A first Capsule task: `capsule build hello.js --export && capsule exec hello.capsule -- Ada`.
import { task } from "capsule";

export const main = task({ name: "main", compute: "MEDIUM", ram: "64MB", timeout: "5s" }, (name = "world") => {
  let squares = 0;
  for (let i = 0; i < 1000; i++) squares += i * i;
  return { greeting: `Hello, ${name}!`, squares };
});
