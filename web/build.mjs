// Builds the static page into dist/: the bundled app (esbuild), the onnxruntime-web wasm binary, the models
// with their runtime description (copied from the Python package's weights), a sample photo and the service
// worker that makes the page work offline. Usage: npm run build  (MODEL=<shipped name> to pick another model).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const weights = join(here, "..", "src", "kdlandmarks", "weights");
const model = process.env.MODEL || "kd-student-300w-lite";
const sampleDir = join(here, "..", "src", "kdlandmarks", "data", "300w-sample", "lfpw", "testset");
const sample = "image_0001.jpg";

const specFile = join(weights, `${model}.json`);
const spec = JSON.parse(readFileSync(specFile, "utf8"));
if (spec.format !== "kdlandmarks-runtime/1") throw new Error(`${specFile}: not a kdlandmarks-runtime/1 description`);

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "models"), { recursive: true });
mkdirSync(join(dist, "samples"), { recursive: true });

await build({
  entryPoints: [join(here, "src", "app.js")],
  outfile: join(dist, "app.js"),
  bundle: true,
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
copyFileSync(join(here, "node_modules", "onnxruntime-web", "dist", "ort-wasm-simd-threaded.wasm"),
  join(dist, "ort-wasm-simd-threaded.wasm"));
copyFileSync(specFile, join(dist, "models", `${model}.json`));
for (const f of [spec.model.file, spec.detector.file]) copyFileSync(join(weights, f), join(dist, "models", f));
copyFileSync(join(sampleDir, sample), join(dist, "samples", sample));

// The service worker caches every file of the build, keyed by a hash of their contents.
const files = [];
const walk = (d) => readdirSync(d).forEach((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : files.push(join(d, f))));
walk(dist);
files.sort();
const hash = createHash("sha256");
for (const f of files) hash.update(relative(dist, f)).update(readFileSync(f));
const assets = ["./", ...files.map((f) => relative(dist, f).split("\\").join("/"))];
const sw = readFileSync(join(here, "sw.template.js"), "utf8")
  .replace("__HASH__", hash.digest("hex").slice(0, 16))
  .replace("__ASSETS__", JSON.stringify(assets));
writeFileSync(join(dist, "sw.js"), sw);

const mb = files.reduce((s, f) => s + statSync(f).size, 0) / 1e6;
console.log(`built ${relative(process.cwd(), dist) || "."}: ${files.length + 1} files, ${mb.toFixed(1)} MB (model ${model})`);
