// Makes a component of a JavaScript module with componentize-js: node build.mjs SRC WIT WORLD OUT.
// Every WASI feature is off, so the component imports only what its world does.
import { componentize } from "@bytecodealliance/componentize-js";
import { readFile, writeFile } from "node:fs/promises";
const [src, wit, world, out] = process.argv.slice(2);
const { component } = await componentize(await readFile(src, "utf8"), {
  witPath: wit,
  worldName: world,
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
