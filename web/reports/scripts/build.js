// Builds the report pages' assets into services/gateway/static (docs/reports-ui.md):
//   reports-<hash8>.js   src/reports.js with uPlot, bundled and minified (esbuild)
//   reports-<hash8>.css  uPlot's stylesheet + src/pages.css (when present), minified
//   manifest.json        {"reports.js": "reports-<hash8>.js", "reports.css": "reports-<hash8>.css"}
// <hash8> is the first 8 hex digits of the SHA-256 of the file's content, so the gateway can
// serve them as immutable and a new build gets new names. Older reports-*.js|css are removed;
// nothing is rewritten when the content is unchanged (make compares the manifest's time).
// Prints each file's size, raw and gzipped.
import { build, transform } from "esbuild";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "../../services/gateway/static");

const js = await build({
  entryPoints: [join(root, "src/reports.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "none",
  logLevel: "warning",
  write: false,
});

const cssSources = [join(root, "node_modules/uplot/dist/uPlot.min.css"), join(root, "src/pages.css")];
const css = await transform(
  cssSources
    .filter(existsSync)
    .map((path) => readFileSync(path, "utf8"))
    .join("\n"),
  { loader: "css", minify: true, target: "chrome100", logLevel: "warning", legalComments: "none" },
);
if (!existsSync(cssSources[1])) console.log("reports: no src/pages.css yet, the CSS is uPlot's alone");

const assets = [
  { key: "reports.js", ext: "js", bytes: Buffer.from(js.outputFiles[0].contents) },
  { key: "reports.css", ext: "css", bytes: Buffer.from(css.code) },
];
const manifest = {};
for (const asset of assets) {
  const hash = createHash("sha256").update(asset.bytes).digest("hex").slice(0, 8);
  asset.name = `reports-${hash}.${asset.ext}`;
  manifest[asset.key] = asset.name;
}

mkdirSync(out, { recursive: true });
const keep = new Set(assets.map((a) => a.name));
for (const name of readdirSync(out)) {
  if (/^reports-[0-9a-f]+\.(js|css)$/.test(name) && !keep.has(name)) rmSync(join(out, name));
}
const writeIfChanged = (path, bytes) => {
  if (!existsSync(path) || !readFileSync(path).equals(bytes)) writeFileSync(path, bytes);
};
for (const { name, bytes } of assets) writeIfChanged(join(out, name), bytes);
writeIfChanged(join(out, "manifest.json"), Buffer.from(JSON.stringify(manifest, null, 2) + "\n"));

for (const { name, bytes } of assets) {
  const gzipped = gzipSync(bytes, { level: 9 }).length;
  const [raw, gz] = [String(bytes.length).padStart(6), String(gzipped).padStart(5)];
  console.log(`reports size: ${name.padEnd(21)} ${raw} B, ${gz} B gzipped`);
}
console.log(`reports: ${join(out, "manifest.json")} lists them`);
