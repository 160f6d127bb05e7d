#!/usr/bin/env node
// A `solc` command line on top of the npm solc package (solcjs), for offline builds.
//
// Why by hand: solcjs's own CLI prints an SMT notice before the JSON and lacks the flags forge
// and slither pass, and no native solc binary comes from the registries these machines reach.
// This answers the two things those tools ask of a solc binary:
//   solc --version                      the native compiler's version banner
//   solc [flags] --standard-json        standard JSON on stdin, the output on stdout
// Imports not given in the input are read from --base-path, then each --include-path
// (solc's own lookup order). settlement/build.py and forge (settlement/forge) both use it.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const args = process.argv.slice(2);
if (args.includes("--version") || args.includes("-v")) {
  process.stdout.write(
    "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n",
  );
  return;
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
  process.exitCode = 2;
  return;
}

function values(flag) {
  const out = [];
  args.forEach((a, i) => {
    if (a === flag && i + 1 < args.length) out.push(...args[i + 1].split(","));
    else if (a.startsWith(flag + "=")) out.push(...a.slice(flag.length + 1).split(","));
  });
  return out;
}
const roots = [values("--base-path")[0] || process.cwd(), ...values("--include-path")];

function findImports(name) {
  for (const root of roots) {
    const file = path.isAbsolute(name) ? name : path.join(root, name);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: "file not found: " + name + " (looked in " + roots.join(", ") + ")" };
}

const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  // No process.exit() after writing: it would cut stdout at 64 KiB when it is a pipe.
  process.stdout.write(solc.compile(input, { import: findImports }));
});
