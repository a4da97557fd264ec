// Runs the page's numerical pipeline (src/pipeline.js) under Node, for tests/test_web.py to compare with the
// Python package (OpenCV, video.LandmarkSmoother): node tests/parity.mjs JOB.json OUT
//
// JOB {"size": S, "images": [...]} (crops): each image {"raw": path of W*H*3 RGB bytes, "width": W,
//   "height": H, "crops": [[6 numbers of a crop matrix], ...], "resizes": [[dw, dh], ...]}. OUT (binary): for
//   each image its crops (S*S*3 bytes each), then its INTER_AREA resizes (dw*dh*3 bytes each).
// JOB {"smoothing": {...spec...}, "frames": [{"t": seconds, "faces": [{"box", "landmarks"}]}]}: OUT (JSON)
//   the smoothed faces of each frame, [[{"track", "box", "landmarks"}, ...], ...].
import { readFileSync, writeFileSync } from "node:fs";
import { LandmarkSmoother, resizeArea, warpCrop } from "../src/pipeline.js";

const [jobPath, outPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
if (job.smoothing) {
  const smoother = new LandmarkSmoother(job.smoothing);
  const out = job.frames.map((fr) => smoother.update(fr.faces, fr.t)
    .map(({ track, face }) => ({ track, box: face.box, landmarks: face.landmarks })));
  writeFileSync(outPath, JSON.stringify(out));
} else {
  const parts = [];
  for (const im of job.images) {
    const img = { data: new Uint8Array(readFileSync(im.raw)), width: im.width, height: im.height };
    for (const m of im.crops || []) parts.push(warpCrop(img, m, job.size));
    for (const [dw, dh] of im.resizes || []) parts.push(resizeArea(img, dw, dh).data);
  }
  writeFileSync(outPath, Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}
