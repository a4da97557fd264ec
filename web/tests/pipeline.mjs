// Runs the page's whole pipeline (src/pipeline.js with onnxruntime-web's wasm backend) under Node, without a
// browser, for tests/test_web.py to compare with the Python package: photos as LandmarkDetector.detect (rolled
// faces' crops turned upright) and frames as tracking.LandmarkTracker (the webcam's tracking).
//
//   node tests/pipeline.mjs JOB.json OUT.json
//
// JOB {"spec": path of the model's runtime description (its ONNX files beside it), "photos": [{"raw": path of
//   W*H*3 RGB bytes, "width": W, "height": H}, ...], "track": {"tracking": settings replacing the description's,
//   "frames": [{"raw", "width", "height", "t": seconds}, ...]}} (either part may be left out).
// OUT {"photos": [[{box, score, landmarks}, ...], ...], "track": {"frames": [{"detected", "faces": [{track, box,
//   score, landmarks}]}], "detections"}}: the same as the page's window.kdl.runBlob and window.kdl.trackBlobs.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-web/wasm";
import { detectPhoto, LandmarkTracker, networkOps } from "../src/pipeline.js";

const [jobPath, outPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
const spec = JSON.parse(readFileSync(job.spec, "utf8"));
ort.env.wasm.numThreads = 1;
const session = (file) => ort.InferenceSession.create(new Uint8Array(readFileSync(join(dirname(job.spec), file))),
  { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
const ops = networkOps(spec, { detector: await session(spec.detector.file), landmarker: await session(spec.model.file) },
  ort.Tensor);
const image = (im) => ({ data: new Uint8Array(readFileSync(im.raw)), width: im.width, height: im.height });

const out = {};
if (job.photos) {
  out.photos = [];
  for (const photo of job.photos) out.photos.push(await detectPhoto(spec, ops, image(photo)));
}
if (job.track) {
  const tracker = new LandmarkTracker({ ...spec, tracking: { ...spec.tracking, ...job.track.tracking } }, ops);
  const frames = [];
  for (const frame of job.track.frames) {
    const r = await tracker.update(image(frame), frame.t);
    frames.push({ detected: r.detected, faces: r.faces.map((f) => ({ track: f.track, ...f.face })) });
  }
  out.track = { frames, detections: tracker.detections };
}
writeFileSync(outPath, JSON.stringify(out));
