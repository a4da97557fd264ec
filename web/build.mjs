// Builds the static page into the Python package (src/kdlandmarks/apps/webpage/, which a wheel ships and
// `kdlandmarks web` serves): the bundled app (esbuild), onnxruntime-web's wasm runtime (SIMD, threads when the
// page is cross-origin isolated) and its pthread worker, a sample photo and the service worker that makes the
// page work offline. Into the package, the models and their runtime description are not copied: the server
// serves models/ from the package's weights, so a wheel holds them once. Usage: npm run build
// (MODEL=<shipped name> to pick another model; OUT=<dir> to build a self-contained copy elsewhere, models
// included, for `kdlandmarks web --dir <dir>` or any static server: without the cross-origin-isolation
// headers the page runs one thread).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..", "src", "kdlandmarks");
const dist = resolve(process.env.OUT || join(pkg, "apps", "webpage"));
const selfContained = Boolean(process.env.OUT);
const weights = join(pkg, "weights");
const model = process.env.MODEL || "kd-student-300w-lite";
const sampleDir = join(pkg, "data", "300w-sample", "lfpw", "testset");
const sample = "image_0001.jpg";
const ortDist = join(here, "node_modules", "onnxruntime-web", "dist");

const specFile = join(weights, `${model}.json`);
const spec = JSON.parse(readFileSync(specFile, "utf8"));
if (spec.format !== "kdlandmarks-runtime/1") throw new Error(`${specFile}: not a kdlandmarks-runtime/1 description`);

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "samples"), { recursive: true });

await build({
  entryPoints: [join(here, "src", "app.js")],
  outfile: join(dist, "app.js"),
  bundle: true,
  // onnxruntime-web's build that loads its wasm glue (ort-wasm-simd-threaded.mjs) from wasmPaths rather than
  // bundling it: the glue is also the script of its pthread workers, which app.js cannot be.
  conditions: ["onnxruntime-web-use-extern-wasm"],
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "linked",
  logLevel: "warning",
  define: {
    __MODEL_SPEC__: JSON.stringify(`models/${model}.json`),
    __SAMPLE__: JSON.stringify(`samples/${sample}`),
  },
});

for (const f of ["index.html", "style.css"]) copyFileSync(join(here, f), join(dist, f));
for (const f of ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"]) copyFileSync(join(ortDist, f), join(dist, f));
copyFileSync(join(sampleDir, sample), join(dist, "samples", sample));
const modelFiles = [`${model}.json`, spec.model.file, spec.detector.file];
if (selfContained) {
  mkdirSync(join(dist, "models"));
  for (const f of modelFiles) copyFileSync(join(weights, f), join(dist, "models", f));
}

// The service worker caches every file of the build and the models, keyed by a hash of their contents.
const files = [];
const walk = (d) => readdirSync(d).forEach((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : files.push(join(d, f))));
walk(dist);
files.sort();
const served = [...files.map((f) => [relative(dist, f).split("\\").join("/"), f]),
  ...(selfContained ? [] : modelFiles.map((f) => [`models/${f}`, join(weights, f)]))];
const hash = createHash("sha256");
for (const [name, f] of served) hash.update(name).update(readFileSync(f));
const assets = ["./", ...served.map(([name]) => name)];
const sw = readFileSync(join(here, "sw.template.js"), "utf8")
  .replace("__HASH__", hash.digest("hex").slice(0, 16))
  .replace("__ASSETS__", JSON.stringify(assets));
writeFileSync(join(dist, "sw.js"), sw);

const mb = files.reduce((s, f) => s + statSync(f).size, 0) / 1e6;
console.log(`built ${relative(process.cwd(), dist) || "."}: ${files.length + 1} files, ${mb.toFixed(1)} MB `
  + `(model ${model}${selfContained ? "" : `, served from ${relative(process.cwd(), weights)}`})`);
