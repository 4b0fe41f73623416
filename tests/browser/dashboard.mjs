// Loads each dashboard view in headless Chromium (Debian's, driven by playwright-core), sends a
// prompt through the try-it box, and saves a screenshot of each view. Run by tests/dashboard.rs
// against a semrouter it started:
//   node tests/browser/dashboard.mjs BASE_URL OUT_DIR PROMPT
// Prints one JSON line with what it saw; exits 1 (with the reasons on stderr) when a view did
// not render, the decision did not appear, or the page logged a JavaScript error.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, outDir, prompt] = process.argv.slice(2);
if (!base || !outDir || !prompt) {
  console.error("usage: node dashboard.mjs BASE_URL OUT_DIR PROMPT");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const STEP_MS = 20000;
const problems = [];
const seen = {};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // The machine has no network beyond loopback: without the background-networking flags
  // Chromium keeps trying Google's hosts.
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (message) => {
    // The one error the test causes on purpose: Chromium logs the 401 of the reload it sends
    // without a token.
    const deliberate = message.text().includes("status of 401") && message.location().url.endsWith("/admin/reload");
    if (message.type() === "error" && !deliberate) problems.push("console error: " + message.text());
  });
  page.on("pageerror", (error) => problems.push("page error: " + error.message));
  page.on("requestfailed", (request) => problems.push("request failed: " + request.url() + " " + (request.failure()?.errorText ?? "")));
  page.on("request", (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith("data:")) problems.push("left the router: " + request.url());
  });

  const step = async (name, body) => {
    try {
      await body();
    } catch (error) {
      problems.push(name + ": " + error.message.split("\n")[0]);
      await page.screenshot({ path: join(outDir, name + "-failed.png"), fullPage: true }).catch(() => {});
    }
  };

  await step("live", async () => {
    await page.goto(base + "/dashboard#live");
    await page.waitForFunction(() => document.getElementById("status").textContent === "ready");
    await page.waitForSelector("#decisions tbody tr td:nth-child(4)");
    seen.live_rows = await page.locator("#decisions tbody tr").count();
    seen.live_models = await page.locator("#decisions tbody tr td:nth-child(4)").allTextContents();
    seen.distribution_cards = await page.locator("#distribution .card").count();
    seen.embedding = await page.locator("#embedding").textContent();
    seen.model_rows = await page.locator("#models tbody tr").count();
    await page.screenshot({ path: join(outDir, "live.png"), fullPage: true });
  });

  await step("policy", async () => {
    await page.click("nav a[data-view=policy]");
    await page.waitForSelector("#policy-graph svg g.node");
    seen.policy_rules = await page.locator("#policy-graph svg g.node.rule, #policy-graph svg g.node.block, #policy-graph svg g.node.default").allTextContents();
    seen.policy_models = await page.locator("#policy-graph svg g.node.model").count();
    seen.policy_edges = await page.locator("#policy-graph svg path.edge").count();
    seen.scoring = await page.locator("#scoring").textContent();
    await page.screenshot({ path: join(outDir, "policy.png"), fullPage: true });
  });

  await step("reload", async () => {
    // Changing state needs the admin token: first without it, then with it.
    const result = page.locator("#reload-result");
    await page.click("#reload");
    await page.waitForFunction(() => document.getElementById("reload-result").textContent.startsWith("refused"));
    seen.reload_without_token = await result.textContent();
    await page.fill("#admin-token", process.env.SEMROUTER_ADMIN_TOKEN || "");
    await page.click("#reload");
    await page.waitForFunction(() => document.getElementById("reload-result").textContent.startsWith("{"));
    seen.reload_with_token = JSON.parse(await result.textContent());
  });

  await step("try", async () => {
    await page.click("nav a[data-view=try]");
    await page.fill("#try-prompt", prompt);
    await page.click("#try-submit");
    await page.waitForSelector("#try-result:not([hidden])");
    const decision = await page.locator("#try-decision dd").allTextContents();
    seen.try_decision = decision;
    seen.try_candidates = await page.locator("#try-candidates tbody tr").count();
    seen.try_signals = await page.locator("#try-signals").textContent();
    seen.try_body = JSON.parse(await page.locator("#try-body").textContent());
    await page.screenshot({ path: join(outDir, "try.png"), fullPage: true });
  });

  await step("live-after-try", async () => {
    await page.click("nav a[data-view=live]");
    // The try-it decision was made through /v1/route, so it joins the live list.
    await page.waitForFunction((n) => document.querySelectorAll("#decisions tbody tr").length > n, seen.live_rows ?? 0);
    seen.live_rows_after = await page.locator("#decisions tbody tr").count();
  });
} finally {
  await browser.close();
}

console.log(JSON.stringify(seen));
if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
