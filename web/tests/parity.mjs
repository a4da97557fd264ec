// Runs the page's numerical pipeline (src/pipeline.js) under Node, for tests/test_web.py to compare with the
// Python package (OpenCV, video.FaceFilter): node tests/parity.mjs JOB.json OUT
//
// JOB {"size": S, "area_grid_tolerance": T, "images": [...]} (crops): each image {"raw": path of W*H*3 RGB bytes, "width": W,
//   "height": H, "crops": [[6 numbers of a crop matrix], ...], "resizes": [[dw, dh], ...]}. OUT (binary): for
//   each image its crops (S*S*3 bytes each), then its INTER_AREA resizes (dw*dh*3 bytes each).
// JOB {"smoothing": {...spec...}, "frames": [{"t": seconds, "box", "landmarks"}]} (one face over time): OUT
//   (JSON) the face One-Euro-filtered (FaceFilter) at each frame, [{"box", "landmarks"}, ...].
// JOB {"calls": [[name, [arguments...]], ...]} (the geometry: crop matrices, squares, boxes, rolls, turns): OUT
//   (JSON) each exported function's result, typed arrays as lists.
import { readFileSync, writeFileSync } from "node:fs";
import * as pipeline from "../src/pipeline.js";
import { FaceFilter, resizeArea, warpCrop } from "../src/pipeline.js";

const [jobPath, outPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
if (job.calls) {
  const out = job.calls.map(([name, args]) => pipeline[name](...args));
  writeFileSync(outPath, JSON.stringify(out, (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v)));
} else if (job.smoothing) {
  const filter = new FaceFilter(job.smoothing, job.smoothing.fps);
  const out = job.frames.map((fr) => filter.apply(fr, fr.t)).map(({ box, landmarks }) => ({ box, landmarks }));
  writeFileSync(outPath, JSON.stringify(out));
} else {
  const parts = [];
  for (const im of job.images) {
    const img = { data: new Uint8Array(readFileSync(im.raw)), width: im.width, height: im.height };
    for (const m of im.crops || []) parts.push(warpCrop(img, m, job.size, job.area_grid_tolerance));
    for (const [dw, dh] of im.resizes || []) parts.push(resizeArea(img, dw, dh).data);
  }
  writeFileSync(outPath, Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}
