// The dashboard: reads the projection views over the API with the caller's token and
// draws them as SVG. No libraries, no build step; served by the binary at /.
//
// Each chart element gets data-points (how many marks it drew) once drawn, which the
// browser test reads next to its screenshot.
"use strict";

const PALETTE = ["#2e6fdb", "#e8590c", "#12b76a", "#9e77ed", "#f04438", "#0e9384", "#dc6803", "#667085", "#c11574", "#155eef"];
const COLORS = { negative: "#d92d20", neutral: "#98a2b3", positive: "#12b76a" };
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 10000;

let token = null;

function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("insights-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("insights-token");
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    showLogin(body.error ? body.error.message : "the token was refused");
    throw new Error("unauthorized");
  }
  if (!res.ok) {
    throw new Error(`${path}: ${body.error ? body.error.message : res.status}`);
  }
  return body;
}

async function post(path) {
  const res = await fetch(path, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${path}: ${body.error ? body.error.message : res.status}`);
  return body;
}

// The token's subject (who "I" am in the review queue), read from its payload.
function subject() {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub;
  } catch {
    return null;
  }
}

function el(tag, attrs = {}, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtNumber(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return Number(x).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
const pct = (x) => (x === null || x === undefined ? "–" : `${fmtNumber(100 * x, 1)} %`);
const day = (t) => new Date(t).toISOString().slice(5, 10);
const hour = (t) => new Date(t).toISOString().slice(5, 13).replace("T", " ") + "h";
const minute = (t) => new Date(t).toISOString().slice(11, 16);

function empty(figure, text) {
  figure.replaceChildren(el("div", { class: "empty" }, text));
  figure.dataset.points = "0";
}

// A frame with a y axis from lo to hi; returns the svg and scale functions.
// Bars sit in bands (`band`), lines and dots on the band edges' grid.
function frame(figure, lo, hi, xLabels, band = false) {
  const w = Math.max(figure.clientWidth || 600, 300), h = 240, m = { l: 40, r: 10, t: 10, b: 24 };
  const svg = el("svg:svg", { viewBox: `0 0 ${w} ${h}`, role: "img" });
  const y = (v) => m.t + (h - m.t - m.b) * (1 - (v - lo) / (hi - lo || 1));
  const x = band
    ? (i, n) => m.l + ((w - m.l - m.r) * (i + 0.5)) / Math.max(n, 1)
    : (i, n) => m.l + (w - m.l - m.r) * (n <= 1 ? 0.5 : i / (n - 1));
  const axis = el("svg:g", { class: "axis" });
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    axis.append(el("svg:line", { x1: m.l, x2: w - m.r, y1: y(v), y2: y(v) }));
    axis.append(el("svg:text", { x: m.l - 6, y: y(v) + 3, "text-anchor": "end" }, fmtNumber(v, hi - lo < 5 ? 1 : 0)));
  }
  const every = Math.max(1, Math.ceil(xLabels.length / 10));
  xLabels.forEach((label, i) => {
    if (i % every === 0) axis.append(el("svg:text", { x: x(i, xLabels.length), y: h - 6, "text-anchor": "middle" }, label));
  });
  svg.append(axis);
  return { svg, x, y, w, h, m };
}

function lineChart(figure, series, xs, label, lo, hi) {
  if (!series.length || !xs.length) return empty(figure, "no data yet");
  const { svg, x, y } = frame(figure, lo, hi, xs.map(label));
  let points = 0;
  series.forEach((s) => {
    const pts = s.points.map((p) => [x(xs.indexOf(p.x), xs.length), y(p.y)]);
    if (pts.length > 1) {
      svg.append(el("svg:polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: s.color, "stroke-width": 2 }));
    }
    pts.forEach(([px, py], i) => {
      const dot = el("svg:circle", { cx: px, cy: py, r: 3, fill: s.color });
      dot.append(el("svg:title", {}, `${s.name} ${label(s.points[i].x)}: ${fmtNumber(s.points[i].y, 2)} (${s.points[i].n} messages)`));
      svg.append(dot);
      points++;
    });
  });
  figure.replaceChildren(svg);
  figure.dataset.points = String(points);
}

function stackedBars(figure, bars, label, keys, colors) {
  if (!bars.length) return empty(figure, "no data yet");
  const hi = Math.max(1, ...bars.map((b) => keys.reduce((s, k) => s + (b[k] || 0), 0)));
  const { svg, x, y, w, m } = frame(figure, 0, hi, bars.map((b) => label(b.x)), true);
  const bw = Math.max(2, ((w - m.l - m.r) / bars.length) * 0.7);
  let points = 0;
  bars.forEach((b, i) => {
    let base = 0;
    keys.forEach((k) => {
      const v = b[k] || 0;
      if (v <= 0) return;
      const rect = el("svg:rect", { x: x(i, bars.length) - bw / 2, y: y(base + v), width: bw, height: Math.max(0.5, y(base) - y(base + v)), fill: colors[k] });
      rect.append(el("svg:title", {}, `${label(b.x)} ${k}: ${v}`));
      svg.append(rect);
      base += v;
      points++;
    });
  });
  figure.replaceChildren(svg);
  figure.dataset.points = String(points);
}

function table(node, head, rows, emptyText) {
  node.replaceChildren();
  if (!rows.length) {
    node.append(el("tr", {}, el("td", { class: "empty" }, emptyText)));
    return;
  }
  node.append(el("tr", {}, ...head.map((h) => el("th", { class: h.endsWith("#") ? "num" : "" }, h.replace(/#$/, "")))));
  rows.forEach((r) => node.append(el("tr", {}, ...r.map((c, i) => el("td", { class: head[i].endsWith("#") ? "num" : "" }, c)))));
}

function legend(node, items) {
  node.replaceChildren(...items.map(([name, color]) => el("span", {}, el("i", { style: `background:${color}` }), name)));
}

async function sentiment() {
  const group = document.getElementById("group").value;
  const granularity = document.getElementById("granularity").value;
  const q = new URLSearchParams({ granularity });
  if (group) q.set("group_by", group);
  const s = await api(`/v1/views/sentiment?${q}`);
  const label = granularity === "day" ? day : hour;
  const xs = [...new Set(s.series.flatMap((r) => r.points.map((p) => Date.parse(p.bucket_start))))].sort((a, b) => a - b);
  const series = s.series.map((r, i) => ({
    name: r.group || "all",
    color: PALETTE[i % PALETTE.length],
    points: r.points.map((p) => ({ x: Date.parse(p.bucket_start), y: p.mean_polarity, n: p.n })),
  }));
  lineChart(document.getElementById("chart-sentiment"), series, xs, label, -1, 1);
  legend(document.getElementById("legend-sentiment"), series.map((r) => [`${r.name} (mean P(positive) − P(negative))`, r.color]));
  document.getElementById("model").textContent = s.model_version ? `model ${s.model_version}` : "";

  const all = !group && granularity === "day" ? s : await api("/v1/views/sentiment?granularity=day");
  const bars = (all.series[0] ? all.series[0].points : []).map((p) => ({ x: Date.parse(p.bucket_start), negative: p.negative, neutral: p.neutral, positive: p.positive }));
  stackedBars(document.getElementById("chart-labels"), bars, day, ["negative", "neutral", "positive"], COLORS);
  return all;
}

async function fairness() {
  const f = await api("/v1/views/fairness?limit=10");
  const select = document.getElementById("fairness-report");
  const keys = f.reports.map((r) => `${r.attributes} · ${r.outcome}`);
  const chosen = keys.includes(select.value) ? select.value : keys.find((k) => k === "gender · negative_sentiment") || keys[0];
  select.replaceChildren(...keys.map((k) => el("option", k === chosen ? { selected: "" } : {}, k)));
  const figure = document.getElementById("chart-fairness");
  const report = f.reports[keys.indexOf(chosen)];
  if (!report) return empty(figure, "no fairness report yet");
  const groups = report.groups.filter((g) => g.selection_rate !== null && g.selection_rate !== undefined);
  if (!groups.length) return empty(figure, "no group large enough yet");
  // Each bar carries its interval (Wilson, at the report's confidence): a gap between two
  // bars inside their intervals is noise.
  const top = (g) => (g.selection_rate_high ?? g.selection_rate);
  const hi = Math.min(1, Math.max(0.1, ...groups.map(top)) * 1.15);
  const { svg, x, y, w, m } = frame(figure, 0, hi, groups.map((g) => g.group), true);
  const bw = Math.max(8, ((w - m.l - m.r) / groups.length) * 0.6);
  groups.forEach((g, i) => {
    const rect = el("svg:rect", { x: x(i, groups.length) - bw / 2, y: y(g.selection_rate), width: bw, height: y(0) - y(g.selection_rate), fill: PALETTE[i % PALETTE.length] });
    const range = g.selection_rate_low != null ? ` (${pct(g.selection_rate_low)}–${pct(g.selection_rate_high)})` : "";
    rect.append(el("svg:title", {}, `${g.group}: ${pct(g.selection_rate)}${range} of ${g.count}`));
    svg.append(rect);
    if (g.selection_rate_low != null) {
      const cx = x(i, groups.length);
      svg.append(el("svg:path", { class: "interval", d: `M${cx} ${y(g.selection_rate_low)}V${y(g.selection_rate_high)}M${cx - 4} ${y(g.selection_rate_low)}h8M${cx - 4} ${y(g.selection_rate_high)}h8`, stroke: "currentColor", fill: "none" }));
    }
  });
  figure.replaceChildren(svg);
  figure.dataset.points = String(groups.length);
  const intervals = report.intervals || {};
  const conf = report.confidence != null ? ` at ${pct(report.confidence)}` : "";
  const metrics = Object.entries(report.metrics).filter(([, v]) => v !== null).map(([k, v]) => {
    const i = intervals[k];
    return i ? `${k} ${fmtNumber(v, 3)} [${fmtNumber(i.low, 3)}, ${fmtNumber(i.high, 3)}]` : `${k} ${fmtNumber(v, 3)}`;
  });
  const alerts = f.alerts.slice(0, 5).map((a) => {
    const evidence = a.interval_low != null ? `, interval [${fmtNumber(a.interval_low, 3)}, ${fmtNumber(a.interval_high, 3)}] at ${pct(a.confidence)}, evidence ${fmtNumber(100 * a.evidence, 2)} %` : "";
    return el("li", {}, `${a.attributes} · ${a.outcome}: ${a.metric} ${fmtNumber(a.value, 3)} (threshold ${fmtNumber(a.threshold, 2)}${evidence}) (${day(Date.parse(a.window_start))})`);
  });
  document.getElementById("fairness-alerts").replaceChildren(el("li", {}, `rate of ${report.outcome} per group${conf}, window ending ${day(Date.parse(report.window_end))}; ${metrics.join(", ")}`), ...alerts);
}

// Claim or release an item from the queue, then redraw it.
function action(item, me) {
  const act = (what) => async (ev) => {
    ev.target.disabled = true;
    try {
      await post(`/v1/reviews/${item.review_id}/${what}`);
      await reviews();
    } catch (e) {
      document.getElementById("status").textContent = `error: ${e.message}`;
      document.getElementById("status").className = "error";
      ev.target.disabled = false;
    }
  };
  const mine = item.opinions.some((o) => o.reviewer === me);
  if (item.status === "open" && !mine) {
    const b = el("button", { type: "button" }, "claim");
    b.addEventListener("click", act("claim"));
    return b;
  }
  if (item.status === "claimed" && item.claimed_by === me) {
    const b = el("button", { type: "button" }, "release");
    b.addEventListener("click", act("release"));
    return b;
  }
  return "";
}

async function reviews() {
  const q = await api("/v1/reviews?status=pending&limit=12");
  const me = subject();
  document.getElementById("queue-count").textContent = `${q.total} pending`;
  const rows = q.items.map((i) => [
    el("span", {}, el("span", { class: `tag ${i.priority}` }, i.priority), i.escalations ? el("span", { class: "overdue", title: "escalated past its SLA" }, ` ↑${i.escalations}`) : ""),
    el("span", { class: i.status === "disputed" ? "overdue" : "" }, i.opinions_required > 1 ? `${i.status} · ${i.opinions.length}/${i.opinions_required} opinions` : i.status),
    i.intent || "",
    el("span", {}, ...i.reasons.map((r) => el("span", { class: "tag" }, r))),
    el("span", { class: i.overdue ? "overdue" : "" }, `${fmtNumber(i.age_seconds / 3600, 1)} h${i.overdue ? " overdue" : ""}`),
    i.claimed_by || "–",
    action(i, me),
  ]);
  table(document.getElementById("reviews"), ["priority", "status", "intent", "reasons", "age", "claimed by", ""], rows, "nothing waiting for a reviewer");
}

// Cohen's kappa between reviewers (second opinions) and between reviewers and the model.
async function agreement() {
  const a = await api("/v1/views/agreement");
  const kappa = (k) => (k === null || k === undefined ? "–" : fmtNumber(k, 2));
  const line = (between, who, s) => [between, who, fmtNumber(s.n), pct(s.agreement), kappa(s.kappa)];
  const rows = [];
  for (const [between, side] of [["reviewer–reviewer", a.reviewers], ["reviewer–model", a.model]]) {
    if (!side.n) continue;
    rows.push(line(between, "all", side));
    side.by_reviewer.slice(0, 8).forEach((r) => rows.push(line(between, r.reviewer, r)));
  }
  table(document.getElementById("agreement"), ["between", "who", "n#", "agree#", "κ#"], rows, "no reviewed items yet");
}

async function health() {
  const h = await api("/v1/views/health?minutes=60");
  const types = [...new Set(h.event_rate.map((r) => r.event_type))].sort();
  const colors = Object.fromEntries(types.map((t, i) => [t, PALETTE[i % PALETTE.length]]));
  const byMinute = new Map();
  h.event_rate.forEach((r) => {
    const t = Date.parse(r.minute);
    if (!byMinute.has(t)) byMinute.set(t, { x: t });
    byMinute.get(t)[r.event_type] = r.n;
  });
  const bars = [...byMinute.values()].sort((a, b) => a.x - b.x);
  stackedBars(document.getElementById("chart-health"), bars, minute, types, colors);
  legend(document.getElementById("legend-health"), types.map((t) => [t, colors[t]]));
  table(document.getElementById("views"), ["view", "position#", "lag#"], h.views.map((v) => [v.name, fmtNumber(v.position), fmtNumber(v.lag)]), "no views");
  table(document.getElementById("dead-letters"), ["dead letters: processor", "class", "count#", "last error"], h.dead_letters.map((d) => [d.processor, d.error_class, fmtNumber(d.n), d.last_error]), "no dead letters");
  return h;
}

async function anomalies() {
  const a = await api("/v1/views/anomalies?limit=10");
  table(document.getElementById("anomalies"), ["window", "where", "expected#", "observed#", "σ#"], a.items.map((i) => [
    `${day(Date.parse(i.window_start))} → ${day(Date.parse(i.window_end))}`,
    `${i.dimension} ${i.value}`,
    fmtNumber(i.expected, 2), fmtNumber(i.observed, 2), fmtNumber(i.stddev, 2),
  ]), "no anomalies");
}

async function kpis(sentimentAll) {
  const r = await api("/v1/views/responses");
  const t = sentimentAll.totals;
  const items = [
    ["messages scored", fmtNumber(t.n)],
    ["negative", pct(t.n ? t.negative / t.n : null)],
    ["mean polarity", fmtNumber(t.mean_polarity, 2)],
    ["drafts", fmtNumber(r.drafts)],
    ["auto-approved", pct(r.auto_approval_rate)],
    ["fallback rate", pct(r.fallback_rate)],
    ["guardrail hits", fmtNumber(Object.values(r.guardrail_hits).reduce((a, b) => a + b, 0))],
  ];
  document.getElementById("kpis").replaceChildren(...items.map(([k, v]) => el("div", { class: "kpi" }, el("b", {}, v), el("span", {}, k))));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const all = await sentiment();
    await Promise.all([kpis(all), fairness(), reviews(), agreement(), health(), anomalies()]);
    status.textContent = `updated ${new Date().toLocaleTimeString()} · store position ${all.position}`;
    status.className = "";
    document.body.dataset.ready = "1";
  } catch (e) {
    if (e.message !== "unauthorized") {
      status.textContent = `error: ${e.message}`;
      status.className = "error";
    }
  }
}

function showLogin(message) {
  document.getElementById("main").hidden = true;
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("status").textContent = message || "a token is needed";
}

function start() {
  // A link with a new token opened on this page: start again with it.
  window.addEventListener("hashchange", () => {
    if (new URLSearchParams(location.hash.slice(1)).get("token")) location.reload();
  });
  token = takeToken();
  document.getElementById("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("insights-token", document.getElementById("token").value.trim());
    location.reload();
  });
  if (!token) return showLogin();
  document.getElementById("main").hidden = false;
  ["group", "granularity", "fairness-report"].forEach((id) => document.getElementById(id).addEventListener("change", refresh));
  refresh();
  setInterval(refresh, REFRESH_MS);
}

start();
