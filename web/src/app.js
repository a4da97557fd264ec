// kdlandmarks in the browser: RetinaFace + the lite KD student on onnxruntime-web (wasm SIMD; several threads
// when the page is cross-origin isolated, as `kdlandmarks web` serves it), on the webcam or on a photo. The
// pipeline is web/src/pipeline.js, parameterised by the model's runtime description
// (models/<model>.json, written by kdlandmarks.modelspec), so the points are those of the Python package.
//
// Test hooks: window.kdl.ready (a Promise), window.kdl.runUrl(url, {repeats}), window.kdl.runBlob(blob, {repeats}),
// window.kdl.trackBlobs(blobs, times, tracking) (the webcam's tracking on given frames),
// window.kdl.runtime ({threads, simd, isolated}: what onnxruntime-web runs on; URL ?threads=N asks for N,
// 1 for one thread) and window.kdl.last (the last result: faces with box, score and 68 [x, y] landmarks in image pixels, pixel
// centres at integers; timings) and, on the webcam, window.kdl.video (frames processed, frames the detector
// ran on; a log of the first frames' timestamps, track ids, raw and shown (smoothed) faces).
// The canvas also carries the last result's landmarks as JSON in data-landmarks.
import * as ort from "onnxruntime-web/wasm";
import { detectPhoto, LandmarkTracker, networkOps, rgbaToRgb } from "./pipeline.js";

/* global __MODEL_SPEC__, __SAMPLE__ */
const SPEC_URL = __MODEL_SPEC__;
const SAMPLE_URL = __SAMPLE__;
const VIDEO_LOG = 300;

const $ = (id) => document.getElementById(id);
const canvas = $("stage");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const video = document.createElement("video");
video.playsInline = true;
video.muted = true;

const state = { spec: null, networks: null, stream: null, tracker: null, busy: false };

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

function now() { return performance.now(); }

// Threads need SharedArrayBuffer, which only a cross-origin-isolated page has (COOP: same-origin and
// COEP: require-corp, the headers `kdlandmarks web` sends); elsewhere onnxruntime-web runs one thread.
function configureWasm() {
  const asked = Number(new URLSearchParams(location.search).get("threads"));
  const isolated = Boolean(globalThis.crossOriginIsolated);
  if (!isolated) ort.env.wasm.numThreads = 1;
  else if (Number.isInteger(asked) && asked > 0) ort.env.wasm.numThreads = asked;
  // else: onnxruntime-web's default, min(4, half the logical cores)
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = new URL("./", document.baseURI).href; // ort-wasm-simd-threaded.{mjs,wasm}
  return isolated;
}

async function loadModels() {
  const isolated = configureWasm();
  const spec = await (await fetch(SPEC_URL)).json();
  if (spec.format !== "kdlandmarks-runtime/1") throw new Error(`${SPEC_URL}: unknown format ${spec.format}`);
  const base = new URL(".", new URL(SPEC_URL, document.baseURI));
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const [detector, landmarker] = await Promise.all([
    ort.InferenceSession.create(new URL(spec.detector.file, base).href, options),
    ort.InferenceSession.create(new URL(spec.model.file, base).href, options),
  ]);
  Object.assign(state, { spec, networks: networkOps(spec, { detector, landmarker }, ort.Tensor) });
  new LandmarkTracker(spec, state.networks); // checks the description's tracking and smoothing settings now
  const threads = ort.env.wasm.numThreads || 1;
  window.kdl.runtime = { threads, simd: true, isolated };
  $("model").textContent = `${spec.model.file.replace(/\.onnx$/, "")} (${spec.model.arch}, ${spec.model.num_points} points, `
    + `${spec.model.input_size} px) · ${spec.detector.name} · onnxruntime-web ${ort.env.versions.web} wasm SIMD, `
    + `${threads} thread${threads === 1 ? "" : "s"}`;
}

// Faces and landmarks of an RGBA photo, as LandmarkDetector.detect (rolled faces' crops turned upright); timings
// in ms (detector: shrink + network + decoding, and a rolled face's re-detection on upright patches with its
// network check; landmarks: crops + network + decoding, all faces, refinement passes of rolled faces included).
async function analyse(rgba, width, height) {
  const t0 = now();
  const image = rgbaToRgb(rgba, width, height);
  const t1 = now();
  const timing = { cropMs: 0, networkMs: 0 };
  const faces = await detectPhoto(state.spec, state.networks, image, timing);
  return { width, height, faces, convertMs: t1 - t0, ...timing };
}

function draw(source, faces, width, height) {
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  ctx.drawImage(source, 0, 0, width, height);
  for (const face of faces) {
    const [x0, y0, x1, y1] = face.box;
    const side = Math.max(x1 - x0, y1 - y0, 1);
    ctx.lineWidth = Math.max(1, side / 150);
    ctx.strokeStyle = "rgba(255, 200, 0, 0.9)";
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0); // pixel centres at integers -> canvas + 0.5
    ctx.fillStyle = "#00ff66";
    const r = Math.max(1.2, side / 90);
    for (const [x, y] of face.landmarks) {
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

function showStats(result, extra = "") {
  const n = result.faces.length;
  const perFace = n ? ` (${(result.landmarksMs / n).toFixed(1)} ms/face)` : "";
  $("detector-ms").textContent = `${result.detectorMs.toFixed(1)} ms`;
  $("landmarks-ms").textContent = `${result.landmarksMs.toFixed(1)} ms${perFace}`;
  $("faces").textContent = `${n}${extra}`;
}

function publish(result) {
  window.kdl.last = result;
  canvas.dataset.landmarks = JSON.stringify(result.faces.map((f) => f.landmarks));
}

// ---------------------------------------------------------------------------------------------------
// Photos
// ---------------------------------------------------------------------------------------------------

async function bitmapOf(blob) {
  // The decoded pixels as they are (no colour management), oriented as the file says: what OpenCV reads.
  return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
}

function pixelsOf(bitmap) {
  const c = new OffscreenCanvas(bitmap.width, bitmap.height);
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(bitmap, 0, 0);
  return g.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

async function runPhoto(blob, repeats = 1) {
  stopWebcam();
  document.body.dataset.state = "busy";
  const bitmap = await bitmapOf(blob);
  const rgba = pixelsOf(bitmap);
  const runs = [];
  let result;
  for (let i = 0; i < repeats; i++) {
    result = await analyse(rgba, bitmap.width, bitmap.height);
    const { detectorMs, landmarksMs, cropMs, networkMs } = result;
    runs.push({ detectorMs, landmarksMs, cropMs, networkMs, faces: result.faces.length });
  }
  draw(bitmap, result.faces, bitmap.width, bitmap.height);
  showStats(result);
  result.runs = runs;
  publish(result);
  document.body.dataset.state = "done";
  setStatus(result.faces.length ? "" : "no face found", result.faces.length ? "" : "warn");
  return result;
}

async function runBlob(blob, { repeats = 1 } = {}) {
  await window.kdl.ready;
  return runPhoto(blob, repeats);
}

async function runUrl(url, options = {}) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return runBlob(await response.blob(), options);
}

// ---------------------------------------------------------------------------------------------------
// Webcam
// ---------------------------------------------------------------------------------------------------

async function startWebcam() {
  if (!navigator.mediaDevices?.getUserMedia) { setStatus("this browser gives no camera access here", "warn"); return; }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, facingMode: "user" } });
  } catch (err) {
    setStatus(`camera: ${err.message || err}`, "warn");
    return;
  }
  video.srcObject = state.stream;
  await video.play();
  // Tracking as the Python package's LandmarkTracker: the detector runs only to find new or lost faces.
  state.tracker = new LandmarkTracker(state.spec, state.networks);
  window.kdl.video = { frames: 0, detections: 0, log: [] }; // the first VIDEO_LOG frames: time, raw and shown faces
  canvas.classList.add("mirror");
  $("webcam").textContent = "Stop webcam";
  setStatus("");
  const frame = document.createElement("canvas");
  const fctx = frame.getContext("2d", { willReadFrequently: true });
  let last = now(), fps = 0, detectorMs = null;
  const loop = async () => {
    if (!state.stream) return;
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h && !state.busy) {
      state.busy = true;
      try {
        if (frame.width !== w || frame.height !== h) { frame.width = w; frame.height = h; state.tracker.reset(); }
        fctx.drawImage(video, 0, 0, w, h);
        const t = now() / 1000;
        const image = rgbaToRgb(fctx.getImageData(0, 0, w, h).data, w, h);
        const result = await state.tracker.update(image, t);
        const smooth = $("smooth").checked; // the tracker always filters; the switch picks what is drawn
        const faces = result.faces.map((f) => (smooth ? f.face : f.raw));
        draw(frame, faces, w, h);
        const v = window.kdl.video;
        v.frames += 1;
        v.detections = state.tracker.detections;
        if (v.log.length < VIDEO_LOG) {
          v.log.push({ t, smooth, detected: result.detected, tracks: result.faces.map((f) => f.track),
            raw: result.faces.map((f) => f.raw), shown: faces, detectorMs: result.detectorMs, landmarksMs: result.landmarksMs });
        }
        if (result.detected) detectorMs = result.detectorMs;
        const tn = now();
        fps = 0.9 * fps + 0.1 * (1000 / Math.max(tn - last, 1));
        last = tn;
        showStats({ faces, detectorMs: detectorMs ?? 0, landmarksMs: result.landmarksMs },
          ` · ${fps.toFixed(0)} fps · detector on ${v.detections} of ${v.frames} frames`);
        publish({ width: w, height: h, faces, detectorMs: result.detectorMs, landmarksMs: result.landmarksMs });
      } finally {
        state.busy = false;
      }
    }
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}

// The webcam's tracking on given frames (image blobs at times `times`, seconds), with a fresh tracker
// (`tracking`: settings that replace the description's): for each frame, its faces (track id, smoothed box,
// score and landmarks) and whether the detector ran.
async function trackBlobs(blobs, times, tracking = {}) {
  await window.kdl.ready;
  const tracker = new LandmarkTracker({ ...state.spec, tracking: { ...state.spec.tracking, ...tracking } }, state.networks);
  const frames = [];
  for (const [k, blob] of blobs.entries()) {
    const bitmap = await bitmapOf(blob);
    const image = rgbaToRgb(pixelsOf(bitmap), bitmap.width, bitmap.height);
    const r = await tracker.update(image, times[k]);
    frames.push({ detected: r.detected, faces: r.faces.map((f) => ({ track: f.track, ...f.face })) });
  }
  return { frames, detections: tracker.detections };
}

function stopWebcam() {
  if (!state.stream) return;
  state.stream.getTracks().forEach((t) => t.stop());
  state.stream = null;
  video.srcObject = null;
  canvas.classList.remove("mirror");
  $("webcam").textContent = "Start webcam";
}

// ---------------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------------

function wire() {
  $("webcam").addEventListener("click", () => (state.stream ? stopWebcam() : startWebcam()));
  $("file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) runPhoto(f).catch(fail); });
  $("sample").addEventListener("click", () => runUrl(SAMPLE_URL).catch(fail));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = [...e.dataTransfer.files].find((x) => x.type.startsWith("image/"));
    if (f) runPhoto(f).catch(fail);
  });
}

function fail(err) {
  console.error(err);
  document.body.dataset.state = "error";
  setStatus(`error: ${err.message || err}`, "error");
}

async function registerOffline() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("sw.js");
    await navigator.serviceWorker.ready;
    $("offline").textContent = "· This page now also works offline.";
    document.body.dataset.offline = "ready";
  } catch (err) {
    $("offline").textContent = `no offline copy (${err.message || err})`;
  }
}

window.kdl = { runUrl, runBlob, trackBlobs, last: null };
window.kdl.ready = (async () => {
  wire();
  setStatus("loading models…");
  try {
    await loadModels();
  } catch (err) {
    fail(err);
    throw err;
  }
  window.kdl.spec = state.spec;
  document.body.dataset.state = "ready";
  setStatus("ready: press Sample photo to see it on a bundled photo, start the webcam, or choose or drop a photo");
  registerOffline();
})();
