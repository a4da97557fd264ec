// Warm ms per face of the page in headless Chromium, on the path a user takes first: the "Sample photo" button.
// One browser opens the page once per thread setting (URL ?threads=N; 0: onnxruntime-web's default; more than
// one thread needs the cross-origin-isolated page that `kdlandmarks web` serves) and, with --compare URL,
// another page (an older build, or the page served without the isolation headers). Each page's button is
// clicked once (cold: the first run compiles the wasm kernels), then `--repeats` more times, the pages in turn,
// and the medians of the warm runs are reported: the detector's ms per photo (shrink, network, decoding) and
// the landmarks' ms per face (crop, network, decoding; the crop and the network also apart).
//
//   cd web && npm run bench -- [--url URL] [--threads 1,0] [--compare URL] [--repeats 20] [--chromium PATH]
//                              [--json OUT]
//
// Without --url it serves the installed page itself (`python3 -m kdlandmarks web --port 0`; $PYTHON to pick
// the interpreter). Prints one line per setting and, with --json, writes them all.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { launch, median, openPage } from "./chromium.mjs";

function parseArgs(argv) {
  const opts = { chromium: "/usr/bin/chromium", repeats: 20, threads: [1, 0], timeout: 180000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--url") opts.url = argv[++i];
    else if (a === "--chromium") opts.chromium = argv[++i];
    else if (a === "--repeats") opts.repeats = Number(argv[++i]);
    else if (a === "--threads") opts.threads = argv[++i].split(",").map(Number);
    else if (a === "--json") opts.json = argv[++i];
    else if (a === "--compare") opts.compare = argv[++i];
    else {
      console.error("usage: node tests/bench.mjs [--url URL] [--threads 1,0] [--compare URL] [--repeats N] [--chromium PATH] [--json OUT]");
      process.exit(2);
    }
  }
  if (!(opts.repeats >= 1) || opts.threads.some((t) => !Number.isInteger(t) || t < 0)) {
    console.error("bench: --repeats must be >= 1 and --threads a list of integers >= 0");
    process.exit(2);
  }
  return opts;
}

// `kdlandmarks web` on a free port; resolves to {url, stop}.
function serve() {
  const python = process.env.PYTHON || "python3";
  const server = spawn(python, ["-m", "kdlandmarks", "web", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.on("exit", (code) => reject(new Error(`kdlandmarks web exited (${code})`)));
    createInterface({ input: server.stdout }).once("line", (line) => {
      const url = line.match(/at (http:\/\/\S+\/)/);
      if (!url) reject(new Error(`kdlandmarks web: unexpected first line: ${line}`));
      else resolve({ url: url[1], stop: () => server.kill() });
    });
  });
}

// One click on the page's "Sample photo" button, and the page's result once it is drawn.
async function clickSample(page) {
  await page.evaluate(() => { document.body.dataset.state = "clicked"; });
  await page.click("#sample");
  await page.waitForFunction(() => document.body.dataset.state === "done" || document.body.dataset.state === "error");
  return page.evaluate(() => {
    const r = window.kdl.last;
    return { faces: r.faces.length, detectorMs: r.detectorMs, landmarksMs: r.landmarksMs, cropMs: r.cropMs, networkMs: r.networkMs };
  });
}

// Each setting's page in the same browser; their warm runs interleave (one click on each page in turn), so
// that a change of the machine's load falls on all settings alike.
async function bench(opts, settings) {
  const { context, close } = await launch({ executablePath: opts.chromium, timeout: opts.timeout });
  try {
    const browser = context.browser()?.version() ?? "chromium";
    // Each page's first click right after it loads, before the next page loads (whose wasm compilation
    // would otherwise compete with it on a busy machine): indicative only, the warm runs are the figures.
    const pages = [], rows = [];
    for (const s of settings) {
      const page = await openPage(context, s.url, { timeout: opts.timeout, newTab: pages.length > 0 });
      const runtime = await page.evaluate(() => ({
        page: document.getElementById("model").textContent, isolated: window.crossOriginIsolated,
        ...(window.kdl.runtime || {}),
      }));
      pages.push(page);
      rows.push({ ...s, runtime, cold: await clickSample(page), warm: [] });
    }
    for (let i = 0; i < opts.repeats; i++) {
      for (const [k, page] of pages.entries()) rows[k].warm.push(await clickSample(page));
    }
    return {
      browser,
      rows: rows.map(({ label, url, runtime, cold, warm }) => {
        if (!warm[0].faces) throw new Error(`${url}: no face found on the sample photo`);
        return {
          label, url, runtime, faces: warm[0].faces, repeats: warm.length,
          cold_ms: { detector: cold.detectorMs, landmarks_per_face: cold.landmarksMs / cold.faces },
          detector_ms: median(warm.map((r) => r.detectorMs)),
          landmarks_ms_per_face: median(warm.map((r) => r.landmarksMs / r.faces)),
          crop_ms_per_face: median(warm.map((r) => r.cropMs / r.faces)),
          network_ms_per_face: median(warm.map((r) => r.networkMs / r.faces)),
        };
      }),
    };
  } finally {
    await close();
  }
}

const opts = parseArgs(process.argv.slice(2));
const server = opts.url ? null : await serve();
const url = opts.url || server.url;
try {
  const settings = opts.threads.map((t) => ({ label: `threads=${t}`, url: `${url}?threads=${t}` }));
  if (opts.compare) settings.push({ label: "compare", url: opts.compare });
  const { browser, rows } = await bench(opts, settings);
  for (const row of rows) {
    const rt = row.runtime;
    console.log(`${row.label} (page: ${rt.threads ?? "?"} thread(s), cross-origin isolated ${rt.isolated}): `
      + `detector ${row.detector_ms.toFixed(1)} ms/photo, landmarks ${row.landmarks_ms_per_face.toFixed(1)} ms/face `
      + `(crop ${row.crop_ms_per_face.toFixed(1)}, network ${row.network_ms_per_face.toFixed(1)}) `
      + `(warm median of ${row.repeats}; first click ${row.cold_ms.detector.toFixed(0)} + `
      + `${row.cold_ms.landmarks_per_face.toFixed(0)} ms/face)`);
  }
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ browser, sample: "the page's Sample photo", rows }, null, 1) + "\n");
} catch (err) {
  console.error(`bench failed: ${err.stack || err}`);
  process.exitCode = 1;
} finally {
  server?.stop();
}
