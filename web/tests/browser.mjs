// Drives the built page in headless Chromium (the distribution's package, through playwright-core; no
// browser download): runs it on photos, reads its landmarks, times it, takes a screenshot and checks that
// it still works offline (served by its service worker). tests/test_web.py runs it and compares the points
// with the Python package's.
//
//   node tests/browser.mjs --url http://127.0.0.1:8000/ --out DIR [--chromium /usr/bin/chromium]
//        [--repeats 30] [--fake-video VIDEO.y4m] [--track FRAMES.json] IMAGE...
//
// Writes DIR/browser.json (per image: faces with boxes and landmarks; timings; versions) and
// DIR/screenshot.png (the page on the bundled sample photo). With --fake-video, Chromium's fake camera plays
// the video and the page's webcam mode runs on it (tracking, One-Euro smoothing on); browser.json gets its frame
// log. With --track (JSON {"tracking": settings replacing the description's, "frames": [{"image": path, "t":
// seconds}, ...]}), the webcam's tracking runs on those frames (window.kdl.trackBlobs) and browser.json gets
// its faces per frame.
import { readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { launch, median, openPage } from "./chromium.mjs";

function parseArgs(argv) {
  const opts = { chromium: "/usr/bin/chromium", repeats: 30, images: [], timeout: 180000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--url") opts.url = argv[++i];
    else if (a === "--out") opts.out = argv[++i];
    else if (a === "--chromium") opts.chromium = argv[++i];
    else if (a === "--repeats") opts.repeats = Number(argv[++i]);
    else if (a === "--timeout") opts.timeout = Number(argv[++i]);
    else if (a === "--fake-video") opts.fakeVideo = argv[++i];
    else if (a === "--track") opts.track = argv[++i];
    else opts.images.push(a);
  }
  if (!opts.url || !opts.out || !opts.images.length) {
    console.error("usage: node tests/browser.mjs --url URL --out DIR [--chromium PATH] [--repeats N] IMAGE...");
    process.exit(2);
  }
  return opts;
}

async function runImage(page, path, repeats) {
  const b64 = readFileSync(path).toString("base64");
  return page.evaluate(async ({ b64, repeats }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const r = await window.kdl.runBlob(new Blob([bytes], { type: "image/jpeg" }), { repeats });
    return { width: r.width, height: r.height, faces: r.faces, runs: r.runs };
  }, { b64, repeats });
}

const opts = parseArgs(process.argv.slice(2));
const log = [];
let browser;
try {
  browser = await launch({
    executablePath: opts.chromium, timeout: opts.timeout,
    args: opts.fakeVideo ? ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${opts.fakeVideo}`] : [],
  });
  const { context } = browser;
  const browserVersion = context.browser()?.version() ?? "chromium";
  const t0 = Date.now();
  const page = await openPage(context, opts.url, { timeout: opts.timeout, log });
  const loadMs = Date.now() - t0;
  const versions = await page.evaluate(() => document.getElementById("model").textContent);
  const runtime = await page.evaluate(() => window.kdl.runtime);

  // The page's own file input, as a user would choose a photo.
  await page.setInputFiles("#file", opts.images[0]);
  await page.waitForFunction(() => document.body.dataset.state === "done" && window.kdl.last);
  const viaInput = await page.evaluate(() => window.kdl.last.faces);

  // A photo dropped on the page.
  let viaDrop = null;
  if (opts.images.length > 1) {
    const b64 = readFileSync(opts.images[1]).toString("base64");
    await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
      document.body.dataset.state = "dropping";
      document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, b64);
    await page.waitForFunction(() => document.body.dataset.state === "done");
    viaDrop = await page.evaluate(() => window.kdl.last.faces);
  }

  const images = {};
  for (const path of opts.images) images[basename(path)] = await runImage(page, path, 1);

  // Timing: the first image, many times (the first runs warm up the wasm kernels).
  await runImage(page, opts.images[0], 5);
  const timed = await runImage(page, opts.images[0], opts.repeats);
  const faces = timed.faces.length;
  const timing = {
    image: basename(opts.images[0]), faces, repeats: opts.repeats,
    detector_ms: median(timed.runs.map((r) => r.detectorMs)),
    landmarks_ms: median(timed.runs.map((r) => r.landmarksMs)),
    landmark_crops_ms: median(timed.runs.map((r) => r.cropMs)),
    landmark_network_ms: median(timed.runs.map((r) => r.networkMs)),
  };
  timing.landmarks_ms_per_face = faces ? timing.landmarks_ms / faces : null;
  timing.total_ms = timing.detector_ms + timing.landmarks_ms;

  // The webcam's tracking on given frames.
  let tracking = null;
  if (opts.track) {
    const job = JSON.parse(readFileSync(opts.track, "utf8"));
    tracking = await page.evaluate(async ({ frames, settings }) => {
      const blobs = frames.map((f) => new Blob([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], { type: "image/png" }));
      return window.kdl.trackBlobs(blobs, frames.map((f) => f.t), settings);
    }, { frames: job.frames.map((f) => ({ b64: readFileSync(f.image).toString("base64"), t: f.t })), settings: job.tracking || {} });
  }

  // The screenshot: the bundled sample, through the page's button.
  await page.click("#sample");
  await page.waitForFunction(() => document.body.dataset.state === "done");
  await page.screenshot({ path: join(opts.out, "screenshot.png"), fullPage: true });

  // The webcam mode on Chromium's fake camera: frames go through detection, landmarks and smoothing.
  let webcam = null;
  if (opts.fakeVideo) {
    await page.click("#webcam");
    await page.waitForFunction(() => window.kdl.video && window.kdl.video.log.filter((f) => f.raw.length).length >= 20);
    await page.click("#webcam");
    webcam = await page.evaluate(() => window.kdl.video);
  }

  // Offline: once the service worker holds the page, a reload without network must still work.
  await page.waitForSelector("body[data-offline=ready]");
  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector("body[data-state=ready], body[data-state=error]");
  const offlineState = await page.getAttribute("body", "data-state");
  let offline = { state: offlineState };
  if (offlineState === "ready") {
    const again = await runImage(page, opts.images[0], 1);
    const a = again.faces.flatMap((f) => f.landmarks.flat()), b = images[basename(opts.images[0])].faces.flatMap((f) => f.landmarks.flat());
    offline = { state: offlineState, same_points: a.length === b.length && a.every((v, i) => v === b[i]) };
  }
  await context.setOffline(false);

  const result = {
    browser: browserVersion, page: versions, runtime, url: opts.url, load_ms: loadMs, images, via_file_input: viaInput, via_drop: viaDrop,
    timing, offline, webcam, tracking, log,
  };
  writeFileSync(join(opts.out, "browser.json"), JSON.stringify(result, null, 1));
  console.log(JSON.stringify({ timing, offline, browser: browserVersion, load_ms: loadMs }));
} catch (err) {
  writeFileSync(join(opts.out, "browser-log.txt"), log.join("\n"));
  console.error(`browser test failed: ${err.stack || err}\n--- page log ---\n${log.join("\n")}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
}
