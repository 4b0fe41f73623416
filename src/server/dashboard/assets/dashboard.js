// semrouter dashboard: plain DOM code, no framework and no build step, so the binary can embed
// it as written. Every view reads the router's own JSON (/dashboard/api/*, /v1/route).
"use strict";

const REFRESH_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function kv(pairs) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v));
  return dl;
}

function sumValues(counts) {
  return typeof counts === "number" ? counts : Object.values(counts || {}).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
}

function fmtUs(us) {
  return us >= 1000 ? (us / 1000).toFixed(2) + " ms" : us + " µs";
}

function fmtNum(x, digits = 3) {
  return typeof x === "number" ? Number(x.toFixed(digits)).toString() : "–";
}

async function getJson(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.status + " " + response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- navigation ------------------------------------------------------------------------------

let current = null;
let timer = null;

function show(view) {
  if (!["live", "policy", "try"].includes(view)) view = "live";
  current = view;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  clearInterval(timer);
  if (view === "live") {
    refreshLive();
    timer = setInterval(refreshLive, REFRESH_MS);
  } else if (view === "policy") {
    loadPolicy();
  } else {
    loadPreferences();
  }
}

// ---- live view -------------------------------------------------------------------------------

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = "pill " + kind;
}

function bars(title, counts, total) {
  const card = el("div", { class: "card" }, el("h3", {}, title));
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) card.append(el("div", { class: "muted" }, "no decisions yet"));
  for (const [name, n] of entries) {
    const share = total ? n / total : 0;
    const fill = el("span", { class: "fill" });
    // Through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
    fill.style.width = Math.max(2, Math.round(share * 160)) + "px";
    card.append(el("div", { class: "bar" }, el("span", { class: "label", title: name }, name), fill, el("span", {}, n + " (" + Math.round(share * 100) + "%)")));
  }
  return card;
}

function renderOverview(o) {
  $("version").textContent = "v" + o.version + " · up " + o.uptime_s + " s";
  if (!o.ready) {
    setStatus("loading models", "warn");
    return;
  }
  const health = o.embedding.health;
  setStatus(health.state === "ready" ? "ready" : health.state, health.state === "ready" ? "ok" : health.state === "degraded" ? "warn" : "bad");
  const embedding = $("embedding");
  embedding.replaceChildren(kv([
    ["backend", o.embedding.backend],
    ["model", o.embedding.model],
    ["provider", o.embedding.execution_provider],
    ["health", health.state + (health.reason ? ": " + health.reason : "")],
    ["fallbacks", o.embedding.fallbacks],
  ]));
  const cache = $("cache");
  if (o.cache) {
    cache.replaceChildren(kv([
      ["hit ratio", (o.cache.hit_ratio * 100).toFixed(1) + "%"],
      ["entries", o.cache.entries + " / " + o.cache.max_entries],
      ["bytes", o.cache.bytes + " / " + o.cache.max_bytes],
      ["evictions", o.cache.evictions],
      ["expirations", o.cache.expirations],
      ["guard rejections", sumValues(o.cache.guard_rejections)],
    ]));
  } else {
    cache.replaceChildren(el("div", { class: "muted" }, "off (cache.enabled: false)"));
  }
  const body = $("models").querySelector("tbody");
  body.replaceChildren(...o.models.map((m) => el("tr", {},
    el("td", {}, m.name), el("td", {}, m.latency_ewma_ms.toFixed(0) + " ms"), el("td", {}, m.latency_p95_ms.toFixed(0) + " ms"), el("td", {}, m.in_flight), el("td", {}, m.proxied ? "yes" : "no"))));
  $("admission").replaceChildren(kv([
    ["in flight", o.admission.in_flight + " / " + o.admission.max_in_flight],
    ["rejected (429)", o.admission.rejections],
  ]));
}

function renderDecisions(d) {
  $("window").textContent = d.window_s + " s";
  const dist = d.distribution;
  const hitRatio = dist.cache_lookups ? Math.round((dist.cache_hits / dist.cache_lookups) * 100) + "%" : "–";
  const summary = el("div", { class: "card" }, el("h3", {}, "Summary"), kv([
    ["decisions", dist.decisions],
    ["cache hits", dist.cache_hits + " of " + dist.cache_lookups + " (" + hitRatio + ")"],
    ["latency p50", fmtUs(dist.latency_p50_us)],
    ["latency p99", fmtUs(dist.latency_p99_us)],
  ]));
  $("distribution").replaceChildren(summary,
    bars("By model", dist.by_model, dist.decisions),
    bars("By category", dist.by_category, dist.decisions),
    bars("By reasoning", dist.by_reasoning, dist.decisions),
    bars("By action", dist.by_action, dist.decisions));
  $("recent-note").textContent = d.recent.length + " newest" + (d.show_prompts ? " (prompts shown: dashboard.show_prompts is on)" : "");
  for (const cell of document.querySelectorAll(".prompt-col")) cell.hidden = !d.show_prompts;
  const rows = d.recent.map((r) => {
    const row = el("tr", {},
      el("td", {}, new Date(r.at_ms).toLocaleTimeString()),
      el("td", {}, r.front_end),
      el("td", { class: "action-" + r.action }, r.action),
      el("td", {}, r.model || "–"),
      el("td", {}, r.category || "–"),
      el("td", {}, r.reasoning || "–"),
      el("td", {}, r.cache ? r.cache + (r.cache_kind ? " (" + r.cache_kind + ")" : "") : "–"),
      el("td", {}, fmtUs(r.latency_us)),
      el("td", {}, (r.policy || "–") + (r.flags.length ? " [" + r.flags.join(", ") + "]" : "")));
    if (d.show_prompts) row.append(el("td", { class: "prompt" }, r.prompt || ""));
    return row;
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "9", class: "muted" }, "no decisions yet: send a request to /v1/route, /v1/chat/completions or through Envoy")));
  $("decisions").querySelector("tbody").replaceChildren(...rows);
}

async function refreshLive() {
  try {
    const [overview, decisions] = await Promise.all([getJson("/dashboard/api/overview"), getJson("/dashboard/api/decisions")]);
    renderOverview(overview);
    renderDecisions(decisions);
  } catch (error) {
    setStatus("unreachable", "bad");
  }
}

// ---- policy view -----------------------------------------------------------------------------

const COLUMN = { signals: 20, rules: 300, models: 720 };
const NODE = { width: 240, height: 46, gap: 14 };

function drawNode(group, x, y, width, title, sub, kind) {
  const node = svg("g", { class: "node " + (kind || ""), transform: "translate(" + x + "," + y + ")" });
  node.append(svg("rect", { width, height: NODE.height, rx: 6 }));
  node.append(svg("text", { x: 10, y: 18 }, title));
  const subText = svg("text", { x: 10, y: 35, class: "sub" }, sub.length > 44 ? sub.slice(0, 43) + "…" : sub);
  subText.append(svg("title", {}, sub));
  node.append(subText);
  group.append(node);
}

function edge(group, x1, y1, x2, y2, kind) {
  const mid = (x1 + x2) / 2;
  group.append(svg("path", { class: "edge " + (kind || ""), d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
}

function drawPolicy(map) {
  const rowY = (i) => 20 + i * (NODE.height + NODE.gap);
  const rows = Math.max(map.signals.length, map.rules.length, map.models.length);
  const height = rowY(rows) + 10;
  const root = svg("svg", { width: COLUMN.models + NODE.width + 20, height, role: "img", "aria-label": "policy map" });
  const edges = svg("g", {});
  const nodes = svg("g", {});
  root.append(edges, nodes);
  for (const [label, x] of [["signals", COLUMN.signals], ["rules, in order", COLUMN.rules], ["candidate models", COLUMN.models]]) {
    root.append(svg("text", { x, y: 12, class: "sub" }, label));
  }
  const signalY = new Map(map.signals.map((s, i) => [s.name, rowY(i) + NODE.height / 2]));
  const modelY = new Map(map.models.map((m, i) => [m.name, rowY(i) + NODE.height / 2]));
  map.signals.forEach((s, i) => drawNode(nodes, COLUMN.signals, rowY(i), 220, s.name, s.detail, "signal"));
  map.rules.forEach((r, i) => {
    const y = rowY(i);
    const action = r.action === "route" ? "" : r.action.toUpperCase() + " · ";
    const extras = [r.reasoning ? "reasoning " + r.reasoning : "", r.flag ? "flag " + r.flag : "", r.preference ? "preference " + r.preference : ""].filter(Boolean).join(", ");
    const sub = action + (r.when || "always") + (extras ? " · " + extras : "");
    drawNode(nodes, COLUMN.rules, y, NODE.width + 80, (i + 1) + ". " + r.name, sub, r.action === "block" ? "block" : r.name === "default" ? "default" : "rule");
    for (const s of r.signals) {
      if (signalY.has(s)) edge(edges, COLUMN.signals + 220, signalY.get(s), COLUMN.rules, y + NODE.height / 2);
    }
    for (const m of r.models) {
      if (modelY.has(m)) edge(edges, COLUMN.rules + NODE.width + 80, y + NODE.height / 2, COLUMN.models, modelY.get(m), "candidate");
    }
  });
  map.models.forEach((m, i) => {
    const best = Object.entries(m.quality).sort((a, b) => b[1] - a[1]).slice(0, 2).map(([c, q]) => c + " " + q.toFixed(2)).join(", ");
    const limits = [m.context_window ? Math.round(m.context_window / 1024) + "k ctx" : "", m.pii_allowed ? "pii: " + (m.pii_allowed.join("/") || "none") : "", m.tenants ? "tenants: " + m.tenants.join("/") : ""].filter(Boolean).join(", ");
    const sub = "$" + m.price.input_per_million + "/$" + m.price.output_per_million + " per M · " + m.family + " · best: " + best + (limits ? " · " + limits : "");
    drawNode(nodes, COLUMN.models, rowY(i), NODE.width, m.name, sub, "model");
  });
  return root;
}

function weightsText(w) {
  return "quality " + w.quality + ", cost " + w.cost + ", latency " + w.latency + ", load " + w.load;
}

async function loadPolicy() {
  try {
    const map = await getJson("/dashboard/api/policy");
    $("policy-graph").replaceChildren(drawPolicy(map));
    const s = map.scoring;
    const pairs = [["weights", weightsText(s.weights)]];
    for (const [name, w] of Object.entries(s.preferences)) pairs.push(["preference " + name, weightsText(w)]);
    pairs.push(["max latency", s.max_latency_ms == null ? "none" : s.max_latency_ms + " ms (latency EWMA)"]);
    pairs.push(["max p95 latency", s.max_latency_p95_ms == null ? "none" : s.max_latency_p95_ms + " ms (latest answers)"]);
    pairs.push(["max cost", s.max_cost == null ? "none" : s.max_cost]);
    pairs.push(["fallback", s.fallback]);
    $("scoring").replaceChildren(kv(pairs));
    $("levels").replaceChildren(kv(map.reasoning_levels.map((l) => [
      "need ≥ " + l.min_need,
      l.enabled ? "on" + (l.effort ? ", " + l.effort : "") + (l.budget_tokens ? ", " + l.budget_tokens + " tokens" : "") : "off",
    ])));
  } catch (error) {
    $("policy-graph").replaceChildren(el("div", { class: "error" }, "policy unavailable: " + error.message));
  }
}

async function reload() {
  const out = $("reload-result");
  out.textContent = "reloading…";
  try {
    const result = await getJson("/admin/reload", { method: "POST", headers: { authorization: "Bearer " + $("admin-token").value } });
    out.textContent = JSON.stringify(result, null, 2);
    loadPolicy();
  } catch (error) {
    out.textContent = "refused (" + (error.status || "network") + "): " + error.message;
  }
}

// ---- try-it view -----------------------------------------------------------------------------

let preferencesLoaded = false;
// The header that names the tenant (routing.tenant_header), from the policy map.
let tenantHeader = "x-semrouter-tenant";

async function loadPreferences() {
  if (preferencesLoaded) return;
  try {
    const map = await getJson("/dashboard/api/policy");
    const select = $("try-preference");
    for (const name of Object.keys(map.scoring.preferences)) select.append(el("option", { value: name }, name));
    if (map.tenant_header) tenantHeader = map.tenant_header;
    preferencesLoaded = true;
  } catch (error) {
    // The engine may still be loading; the next visit tries again.
  }
}

function factorCell(f) {
  return el("td", { title: "contribution " + fmtNum(f.contribution, 4) }, fmtNum(f.value, 5) + " → " + fmtNum(f.contribution, 3));
}

function renderTry(d) {
  $("try-error").hidden = true;
  $("try-result").hidden = false;
  const pairs = [
    ["action", d.action],
    ["model", d.model || "–"],
    ["policy", d.policy || "–"],
    ["reason", d.reason],
    ["category", d.category ? d.category.name + " (" + fmtNum(d.category.confidence, 2) + ")" : "–"],
    ["reasoning", d.reasoning ? (d.reasoning.enabled ? "on" : "off") + (d.reasoning.effort ? ", " + d.reasoning.effort : "") + (d.reasoning.budget_tokens ? ", " + d.reasoning.budget_tokens + " tokens" : "") + " (" + d.reasoning.family + ")" : "–"],
    ["flags", (d.flags || []).join(", ") || "–"],
    ["time", d.timing_us ? fmtUs(d.timing_us.total) : "–"],
  ];
  if (d.tools) pairs.push(["tools kept", d.tools.kept.map((t) => t.name + " (" + fmtNum(t.similarity, 2) + ")").join(", ")]);
  $("try-decision").replaceChildren(kv(pairs));
  const s = d.signals;
  const signalPairs = [];
  if (s) {
    signalPairs.push(["domain", s.domain.category + " (" + fmtNum(s.domain.confidence, 2) + "), uncertainty " + fmtNum(s.domain.uncertainty, 2)]);
    if (s.complexity) signalPairs.push(["complexity", s.complexity.label + " (" + fmtNum(s.complexity.score, 2) + ")"]);
    signalPairs.push(["reasoning need", fmtNum(s.reasoning_need, 3)]);
    if (s.jailbreak) signalPairs.push(["jailbreak", fmtNum(s.jailbreak.score, 3) + (s.jailbreak.detected ? " (detected)" : "")]);
    signalPairs.push(["keywords", s.keywords.join(", ") || "none"]);
    if (s.pii) signalPairs.push(["personal data", (s.pii.types || []).join(", ") || "none"]);
    signalPairs.push(["request", s.context.prompt_tokens + " prompt tokens, " + s.context.turns + " turns, " + s.context.tools + " tools"]);
  }
  for (const c of d.categories || []) signalPairs.push(["p(" + c.name + ")", fmtNum(c.probability, 3)]);
  $("try-signals").replaceChildren(kv(signalPairs));
  $("try-candidates").querySelector("tbody").replaceChildren(...(d.candidates || []).map((c) => el("tr", {},
    el("td", {}, c.model), el("td", {}, fmtNum(c.score, 3)),
    factorCell(c.factors.quality), factorCell(c.factors.cost), factorCell(c.factors.latency), factorCell(c.factors.load))));
  const excluded = d.excluded || [];
  $("try-excluded").replaceChildren(...(excluded.length ? [el("h3", {}, "Excluded"), kv(excluded.map((e) => [e.model, e.reason]))] : []));
  $("try-body").textContent = d.request ? JSON.stringify(d.request, null, 2) : "(none: the request is blocked)";
}

async function tryPrompt(event) {
  event.preventDefault();
  const prompt = $("try-prompt").value.trim();
  if (!prompt) {
    showTryError("type a prompt first");
    return;
  }
  const messages = [];
  const system = $("try-system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push({ role: "user", content: prompt });
  const headers = { "content-type": "application/json", "cache-control": "no-cache, no-store" };
  if ($("try-preference").value) headers["x-semrouter-preference"] = $("try-preference").value;
  if ($("try-cost").value !== "") headers["x-semrouter-cost-weight"] = $("try-cost").value;
  if ($("try-tenant").value.trim()) headers[tenantHeader] = $("try-tenant").value.trim();
  $("try-submit").disabled = true;
  try {
    renderTry(await getJson("/v1/route?explain=true", { method: "POST", headers, body: JSON.stringify({ model: "auto", messages }) }));
  } catch (error) {
    showTryError(error.message);
  } finally {
    $("try-submit").disabled = false;
  }
}

function showTryError(message) {
  $("try-result").hidden = true;
  const box = $("try-error");
  box.textContent = message;
  box.hidden = false;
}

// ---- start -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("try-form").addEventListener("submit", tryPrompt);
  $("reload").addEventListener("click", reload);
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1));
});
