// Headless Chromium for the page's tests and benchmark: the distribution's package (/usr/bin/chromium) through
// playwright-core (no browser download), a fresh profile, and the flags of a machine whose only network is
// the local server.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// A persistent context on a fresh --user-data-dir; close() closes it and removes the profile.
export async function launch({ executablePath = "/usr/bin/chromium", timeout = 180000, args = [], viewport } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "kdl-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath, headless: true, args: [...CHROMIUM_FLAGS, ...args], timeout,
      viewport: viewport || { width: 1000, height: 720 },
    });
    const close = async () => {
      try { await context.close(); } finally { rmSync(profile, { recursive: true, force: true }); }
    };
    return { context, close };
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}

// Loads the app at `url` in a tab (the context's first, else a new one) and returns it once its models are
// loaded (throws with the page's status when they fail to load). The tab's console lines go to `log`.
export async function openPage(context, url, { timeout = 180000, log = [], newTab = false } = {}) {
  const page = (!newTab && context.pages()[0]) || await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForSelector("body[data-state=ready], body[data-state=error]");
  if (await page.getAttribute("body", "data-state") === "error") {
    throw new Error(`page failed to load: ${await page.textContent("#status")}`);
  }
  return page;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
