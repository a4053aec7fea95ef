// Opens the dashboard in headless Chromium and checks that it drew data:
//
//   node dashboard.mjs BASE_URL TOKEN SCREENSHOT.png
//
// - without a token the page asks for one;
// - with one, every chart reports marks drawn (data-points) and its screenshot holds
//   coloured pixels (marks, not just axes and grey text);
// - the fairness bars carry their confidence intervals, the metrics theirs;
// - the tables filled in (the agreement table with the decision the harness made);
// - a reviewer claims an item from the queue and hands it back with the row's buttons;
// - the page logged no errors.
// Prints a JSON summary; exits 1 naming what failed.
import { chromium } from "playwright-core";
import { PNG } from "pngjs";

const [base, token, out] = process.argv.slice(2);
if (!base || !token || !out) {
  console.error("usage: node dashboard.mjs BASE_URL TOKEN SCREENSHOT.png");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const failures = [];
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  await page.goto(`${base}/`);
  if (!(await page.locator("form#login").isVisible())) failures.push("without a token the page does not ask for one");
  errors.length = 0; // the page's own 'no token' state is not an error

  await page.goto(`${base}/#token=${token}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  if (page.url().includes("token=")) failures.push("the token stays in the address bar");

  const charts = {};
  for (const name of ["sentiment", "labels", "fairness", "health"]) {
    const figure = page.locator(`#chart-${name}`);
    const points = Number(await figure.getAttribute("data-points"));
    const png = PNG.sync.read(await figure.screenshot());
    let coloured = 0;
    for (let i = 0; i < png.data.length; i += 4) {
      const r = png.data[i], g = png.data[i + 1], b = png.data[i + 2];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    charts[name] = { points, coloured, share: +(coloured / (png.width * png.height)).toFixed(4) };
    if (!(points > 0)) failures.push(`chart ${name} drew no marks`);
    if (coloured < 150) failures.push(`chart ${name}: only ${coloured} coloured pixels in its screenshot`);
  }
  // Each fairness bar carries its confidence interval (an error bar), and the metrics
  // line shows the metrics' intervals.
  const intervals = await page.locator("#chart-fairness path.interval").count();
  if (intervals !== charts.fairness.points) failures.push(`fairness: ${intervals} intervals for ${charts.fairness.points} bars`);
  const fairnessText = await page.locator("#fairness-alerts").innerText();
  if (!/\[[-0-9.]+, [-0-9.]+\]/.test(fairnessText)) failures.push(`fairness: no metric interval in "${fairnessText.slice(0, 200)}"`);
  const rows = {};
  for (const table of ["reviews", "agreement", "views", "anomalies"]) {
    rows[table] = await page.locator(`#${table} tr td:not(.empty)`).count();
  }
  if (rows.views === 0) failures.push("the view status table is empty");
  if (rows.reviews === 0) failures.push("the review queue is empty");
  // The harness decided one item before: its reviewer's reading against the model's label.
  const agreementText = await page.locator("#agreement").innerText();
  if (!agreementText.includes("reviewer–model")) failures.push(`no reviewer–model agreement: "${agreementText.slice(0, 200)}"`);
  // The token is a reviewer's: claim an item from the queue, then hand it back.
  const claimed = await claimAndRelease(page);
  if (claimed) failures.push(claimed);
  const kpis = await page.locator("#kpis .kpi").count();
  if (kpis < 5) failures.push(`only ${kpis} key figures`);
  await page.screenshot({ path: out, fullPage: true });
  console.log(JSON.stringify({ charts, rows, kpis, errors }));
} finally {
  await browser.close();
}
if (errors.length) failures.push(`page errors: ${errors.join("; ")}`);
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}

// Clicks the first item's claim button, waits for its release button, clicks that and
// waits for the claim to be gone; returns what went wrong, if anything.
async function claimAndRelease(page) {
  const claim = page.locator("#reviews button", { hasText: "claim" }).first();
  if ((await claim.count()) === 0) return "no claim button in the review queue";
  await claim.click();
  const release = page.locator("#reviews button", { hasText: "release" });
  try {
    await release.first().waitFor({ timeout: 15000 });
  } catch {
    return "claiming from the dashboard showed no release button within 15 s";
  }
  const claimedBy = await page.locator("#reviews").innerText();
  if (!claimedBy.includes("dashboard")) return `the claimed item does not show its holder: "${claimedBy.slice(0, 300)}"`;
  await release.first().click();
  try {
    await release.first().waitFor({ state: "detached", timeout: 15000 });
  } catch {
    return "releasing from the dashboard left the release button for 15 s";
  }
  return null;
}
