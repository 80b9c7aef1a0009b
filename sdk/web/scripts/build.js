// Builds dist/ from src/ with esbuild (minified) and prints each file's size, minified
// and gzipped: clarion.mjs (ES module), clarion.js (plain script, global `Clarion`),
// clarion-sw.js (the service worker, a classic script for importScripts).
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
mkdirSync(dist, { recursive: true });

const common = { bundle: true, minify: true, target: "es2020", logLevel: "warning", legalComments: "none" };
const outputs = [
  { entryPoints: [join(root, "src/clarion.js")], outfile: join(dist, "clarion.mjs"), format: "esm" },
  { entryPoints: [join(root, "src/clarion.js")], outfile: join(dist, "clarion.js"), format: "iife", globalName: "Clarion" },
  { entryPoints: [join(root, "src/clarion-sw.js")], outfile: join(dist, "clarion-sw.js"), format: "iife" },
];
await Promise.all(outputs.map((options) => build({ ...common, ...options })));

const sizes = {};
for (const { outfile } of outputs) {
  const bytes = readFileSync(outfile);
  sizes[outfile.slice(dist.length + 1)] = { minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length };
}
writeFileSync(join(dist, "sizes.json"), JSON.stringify(sizes, null, 2) + "\n");
for (const [name, size] of Object.entries(sizes)) {
  console.log(`sdk size: ${name.padEnd(14)} ${String(size.minified).padStart(6)} B minified, ${String(size.gzipped).padStart(5)} B gzipped`);
}
