// stationmon status page: plain DOM and inline SVG, no libraries, nothing fetched from outside.
// A summary per company and district (/api/v1/summary), then one page of stations filtered on the server
// (/api/v1/stations?company=&district=&status=&q=&sort=&page=), each with its loops, alerts and charts
// (/api/v1/history for the page's stations). Every REFRESH_MS it asks again with If-None-Match: an
// unchanged answer is a 304 without a body, and only what changed is drawn again.
"use strict";

const REFRESH_MS = 5000;
const HISTORY_EVERY_MS = 15000;
const CHART_POINTS = 150;
const DEFAULT_PAGE_SIZE = 24;
const SVG_NS = "http://www.w3.org/2000/svg";
const STATUSES = ["ok", "noncompliant", "sensor_fault", "offline", "unknown"];
const SEVERITIES = ["critical", "major", "warning"];

const state = {
  summary: null, page: null, history: {}, historyAt: 0, historyKey: "", margin: 1.0,
  cache: new Map(), // url -> {etag, doc}
  pageNo: 1, pageSize: DEFAULT_PAGE_SIZE,
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function fmt(v, digits = 1) {
  if (typeof v !== "number" || !isFinite(v)) return "–";
  const text = v.toFixed(digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text; // "-0.0" reads as a frost that is not there
}

// a value and its threshold with as many decimals (up to two more) as tell them apart: "40.96 / 41.00",
// never "41.0 / 41.0" for a value said to be below its threshold (as the alert messages print them)
function fmtPair(v, threshold, digits = 1) {
  for (let d = digits; d < digits + 2; d++) {
    if (fmt(v, d) !== fmt(threshold, d)) return [fmt(v, d), fmt(threshold, d)];
  }
  return [fmt(v, digits + 2), fmt(threshold, digits + 2)];
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function clock(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString([], { hourCycle: "h23" }) : "–";
}

// GET with the ETag of the copy we hold: {doc, changed}; a 304 keeps the copy and changes nothing.
async function getJSON(url) {
  const held = state.cache.get(url);
  const headers = held ? { "If-None-Match": held.etag } : {};
  const res = await fetch(url, { cache: "no-store", headers });
  if (res.status === 304 && held) return { doc: held.doc, changed: false };
  if (!res.ok) {
    let reason = `HTTP ${res.status}`;
    try { reason = (await res.json()).error || reason; } catch (e) { /* not JSON */ }
    throw new Error(`${url}: ${reason}`);
  }
  const doc = await res.json();
  const etag = res.headers.get("ETag");
  if (etag) state.cache.set(url, { etag, doc });
  // one page and one summary are worth keeping; old pages would only pile up
  if (state.cache.size > 8) state.cache.delete(state.cache.keys().next().value);
  return { doc, changed: true };
}

// ------------------------------------------------------------------------------------------------
// Filters: in the form and in the URL (?company=…&district=…&status=problem&q=youyi&page=2), so a view
// can be bookmarked and sent

const URL_KEYS = { "filter-company": "company", "filter-district": "district", "filter-status": "status", "filter-text": "q", "filter-sort": "sort" };

function filterParams() {
  const params = new URLSearchParams();
  for (const [id, key] of Object.entries(URL_KEYS)) {
    const value = document.getElementById(id).value.trim();
    if (value && !(key === "sort" && value === "worst")) params.set(key, value);
  }
  return params;
}

function stationsUrl() {
  const params = filterParams();
  params.set("page", String(state.pageNo));
  params.set("page_size", String(state.pageSize));
  return `/api/v1/stations?${params}`;
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(el("option", { value, text: value }));
}

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  for (const [id, key] of Object.entries(URL_KEYS)) {
    const value = params.get(key);
    if (value === null) continue;
    const control = document.getElementById(id);
    if (control.tagName === "SELECT") ensureOption(control, value);
    control.value = value;
  }
  state.pageNo = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  const size = parseInt(params.get("page_size") || "", 10);
  if (size > 0 && size <= 200) state.pageSize = size;
}

function filtersToUrl() {
  const params = filterParams();
  if (state.pageNo > 1) params.set("page", String(state.pageNo));
  if (state.pageSize !== DEFAULT_PAGE_SIZE) params.set("page_size", String(state.pageSize));
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function setFilter(id, value) {
  const control = document.getElementById(id);
  ensureOption(control, value);
  control.value = value;
  state.pageNo = 1;
  filtersToUrl();
  refreshStations();
  document.getElementById("stations-section").scrollIntoView();
}

function fillChoices(id, groups) {
  const select = document.getElementById(id);
  for (const g of groups) if (g.name) ensureOption(select, g.name);
}

// ------------------------------------------------------------------------------------------------
// Summary: totals in the header, then a table per company and per district

// the tables' columns say what is counted; the header's chips name their status too ("5 noncompliant")
function statusCounts(counts, labelled = false) {
  return el("span", { class: "counts" }, ...STATUSES.filter((s) => counts[s]).map((s) =>
    el("span", { class: `chip ${s}`, title: s, "data-status": s, text: labelled ? `${counts[s]} ${s.replace("_", " ")}` : String(counts[s]) })));
}

// the width through the CSSOM: the page's CSP refuses style attributes
function fill(pct) {
  const node = el("span", { class: `fill ${pct >= 95 ? "good" : pct >= 80 ? "fair" : "poor"}` });
  node.style.width = `${pct.toFixed(1)}%`;
  return node;
}

function complianceBar(g) {
  if (g.share_compliant === null || g.share_compliant === undefined) return el("span", { class: "muted-inline", text: "not judged" });
  const pct = g.share_compliant * 100;
  const bar = el("span", { class: "bar", title: `${g.loops_compliant} of ${g.loops_judged} judged loops compliant` },
    fill(pct));
  return el("span", { class: "compliance" }, bar, el("span", { class: "pct", text: `${pct.toFixed(1)} %` }));
}

function alertCounts(alerts) {
  const parts = SEVERITIES.filter((s) => alerts[s]).map((s) => el("span", { class: `chip ${s}`, title: s, text: `${alerts[s]} ${s}` }));
  return parts.length ? el("span", { class: "counts" }, ...parts) : el("span", { class: "muted-inline", text: "none" });
}

function worstLinks(g) {
  return el("span", { class: "worst" }, ...g.worst.slice(0, 3).map((w) => {
    const a = el("a", { href: `?q=${encodeURIComponent(w.id)}`, class: `worst-link ${w.status}`, title: `${w.id}: ${w.status}, ${w.alerts_total} alert(s)`, text: w.name || w.id });
    a.addEventListener("click", (ev) => { ev.preventDefault(); setFilter("filter-text", w.id); });
    return a;
  }));
}

function groupRow(kind, g, filterId) {
  const name = el("a", { href: "#", text: g.name || "(none)" });
  name.addEventListener("click", (ev) => { ev.preventDefault(); setFilter(filterId, g.name); });
  return el("tr", { "data-group": kind, "data-name": g.name },
    el("td", { class: "group-name" }, name),
    el("td", { class: "num", text: `${g.stations}` }),
    el("td", {}, statusCounts(g.loops_by_status)),
    el("td", {}, complianceBar(g)),
    el("td", {}, alertCounts(g.alerts)),
    el("td", {}, worstLinks(g)));
}

function renderSummary(doc) {
  const t = doc.totals;
  const shard = doc.shard && doc.shard.count > 1 ? ` · shard ${doc.shard.index}/${doc.shard.count}` : "";
  document.getElementById("site-name").textContent = (doc.site.name || "") + shard;
  document.getElementById("totals").replaceChildren(
    el("span", { class: "total", text: `${t.stations} stations:` }),
    statusCounts(t.stations_by_status, true),
    el("span", { class: "total", text: `· ${t.loops} loops, compliant` }), complianceBar(t),
    el("span", { class: "total", text: "· active alerts" }), alertCounts(t.alerts));
  document.querySelector("#companies tbody").replaceChildren(...doc.companies.map((g) => groupRow("company", g, "filter-company")));
  document.querySelector("#districts tbody").replaceChildren(...doc.districts.map((g) => groupRow("district", g, "filter-district")));
  fillChoices("filter-company", doc.companies);
  fillChoices("filter-district", doc.districts);
}

// Charts: supply and return over the in-memory window, required values as dashed lines

// The time axis: the window's first and last times as wall-clock labels, a tick at each, seconds shown
// when the window is short (a fresh start), so "when" is read off the chart, not guessed.
function timeAxis(svg, t0, t1, x, w, h, axis) {
  const opts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", ...(t1 - t0 < 600 ? { second: "2-digit" } : {}) };
  const base = document.createElementNS(SVG_NS, "line");
  base.setAttribute("class", "axis");
  base.setAttribute("x1", x(t0)); base.setAttribute("x2", x(t1));
  base.setAttribute("y1", h - axis); base.setAttribute("y2", h - axis);
  svg.append(base);
  // two labels need room; a window of a moment (a station just started or gone) gets its end only
  const ends = x(t1) - x(t0) < 70 ? [[t1, "start"]] : [[t0, "start"], [t1, "end"]];
  ends.forEach(([t, anchor]) => {
    const tick = document.createElementNS(SVG_NS, "line");
    tick.setAttribute("class", "axis");
    tick.setAttribute("x1", x(t)); tick.setAttribute("x2", x(t));
    tick.setAttribute("y1", h - axis); tick.setAttribute("y2", h - axis + 2);
    const label = document.createElementNS(SVG_NS, "text");
    label.setAttribute("class", "time-label");
    label.setAttribute("x", x(t)); label.setAttribute("y", h - 1);
    label.setAttribute("text-anchor", anchor);
    label.textContent = new Date(t * 1000).toLocaleTimeString([], opts);
    svg.append(tick, label);
  });
}

function chart(series, loop) {
  const w = 150, h = 76, pad = 4, axis = 12;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  const lines = ["supply_temp", "return_temp"].map((q) => ({ q, pts: (series[q] || []) }));
  const all = lines.flatMap((l) => l.pts);
  const required = [loop.required_supply_temp, loop.required_return_temp].filter((v) => typeof v === "number");
  if (all.length < 2) {
    const t = document.createElementNS(SVG_NS, "text");
    t.setAttribute("x", 6); t.setAttribute("y", h / 2); t.textContent = "collecting history…";
    svg.append(t);
    return svg;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const values = all.map((p) => p[1]).concat(required);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 2) { lo -= 1; hi += 1; }
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (w - 2 * pad);
  const y = (v) => h - axis - pad - ((v - lo) / (hi - lo)) * (h - axis - 2 * pad);
  for (const { q, pts } of lines) {
    if (pts.length < 2) continue;
    const path = document.createElementNS(SVG_NS, "polyline");
    path.setAttribute("class", q === "supply_temp" ? "supply" : "return");
    path.setAttribute("points", pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
    svg.append(path);
  }
  [[loop.required_supply_temp, "supply"], [loop.required_return_temp, "return"]].forEach(([v, cls]) => {
    if (typeof v !== "number") return;
    const line = document.createElementNS(SVG_NS, "line");
    line.setAttribute("class", `${cls} required`);
    line.setAttribute("x1", pad); line.setAttribute("x2", w - pad);
    line.setAttribute("y1", y(v).toFixed(1)); line.setAttribute("y2", y(v).toFixed(1));
    svg.append(line);
  });
  timeAxis(svg, t0, t1, x, w, h, axis);
  return svg;
}

// ------------------------------------------------------------------------------------------------
// Rendering

function measured(loop, quantity, required) {
  const v = loop.values[quantity];
  if (!v) return el("span", { text: "–" });
  const low = typeof required === "number" && typeof v.value === "number" && v.value < required - state.margin;
  const [value, req] = fmtPair(v.value, required);
  const text = `${value} °C` + (typeof required === "number" ? ` / ${req}` : "");
  return el("span", { class: low ? "low" : null, title: v.fault ? `fault: ${v.fault}` : null, text });
}

function indoorSensors(loop) {
  const vals = Object.values(loop.indoor_sensors || {}).map((s) => s.value).filter((v) => typeof v === "number");
  if (!vals.length) return null;
  const min = Math.min(...vals), mean = vals.reduce((a, b) => a + b, 0) / vals.length;
  return `${vals.length} sensors: mean ${fmt(mean)}, min ${fmt(min)} °C`;
}

const VERDICT_TITLES = {
  sensors: "the verdict rests on fresh household sensors (the legal evidence)",
  estimate: "no household sensors: the verdict rests on the indoor estimate from the water",
  none: "not judged",
};

function verdictChip(loop) {
  const verdict = loop.verdict || "none";
  return el("span", { class: `verdict ${verdict}`, "data-verdict": verdict, title: VERDICT_TITLES[verdict] || "", text: verdict });
}

// A loop's active alerts as badges beside its status: a loop judged "ok" by its household sensors can
// still carry a water-model warning (delta_t_low ...), which must not hide behind a green chip.
function alertBadges(loop) {
  const seen = new Set();
  return (loop.alerts || []).filter((a) => !seen.has(a.rule) && seen.add(a.rule)).map((a) =>
    el("span", { class: `chip badge ${a.severity}`, "data-alert-rule": a.rule, title: `active alert: ${a.rule} (${a.severity})`, text: `⚠ ${a.rule}` }));
}

function renderLoop(st, loop) {
  const kv = el("dl", { class: "kv" });
  const row = (k, v) => { kv.append(el("dt", { text: k }), el("dd", {}, v)); };
  row("supply / req.", measured(loop, "supply_temp", loop.required_supply_temp));
  row("return / req.", measured(loop, "return_temp", loop.required_return_temp));
  // the evaluator leaves ΔT out where a sensor is faulty; the raw difference still tells the operator something
  const s = loop.values.supply_temp, r = loop.values.return_temp;
  const dt = typeof loop.delta_t === "number" ? loop.delta_t : (s && r && typeof s.value === "number" && typeof r.value === "number" ? s.value - r.value : null);
  row("ΔT", `${fmt(dt)} K` + (typeof loop.expected_delta_t === "number" ? ` (exp. ${fmt(loop.expected_delta_t)})` : ""));
  row("est. indoor", `${fmt(loop.estimated_indoor_temp)} °C`);
  const sensors = indoorSensors(loop);
  if (sensors) row("indoor", sensors);
  if (typeof loop.indoor_below_target === "number" && loop.indoor_below_target > 0) {
    const refund = typeof loop.indoor_below_refund === "number" ? `, ${loop.indoor_below_refund} below refund tier` : "";
    row("cold flats", el("span", { class: "low", text: `${loop.indoor_below_target} below target${refund}` }));
  }
  if (loop.values.flow) row("flow", `${fmt(loop.values.flow.value)} m³/h`);
  if (loop.active_alerts) row("alerts", el("span", { class: "low", text: String(loop.active_alerts) }));
  const series = (state.history[st.id] || {})[loop.id] || {};
  return el(
    "div", { class: `loop ${loop.status}${(loop.alerts || []).length ? " has-alerts" : ""}`, "data-loop": loop.id, "data-status": loop.status },
    el("div", {},
      el("div", { class: "loop-head" },
        el("span", { class: "loop-name", text: loop.name || loop.id }),
        el("span", { class: "station-meta", text: `${loop.emitter} ${fmt(loop.design_supply, 0)}/${fmt(loop.design_return, 0)}` }),
        el("span", { class: `chip ${loop.status}`, text: loop.status }),
        verdictChip(loop),
        ...alertBadges(loop)),
      kv),
    chart(series, loop),
  );
}

function stationMeta(st) {
  const parts = [st.id, st.district || "no district"];
  if (st.company) parts.push(st.company);
  if (typeof st.area_m2 === "number") parts.push(`${Math.round(st.area_m2).toLocaleString()} m²`);
  if (typeof st.households === "number") parts.push(`${st.households} households`);
  return parts.join(" · ");
}

// ------------------------------------------------------------------------------------------------
// Acknowledging an alert: the write endpoint needs the bearer token, asked once per browser tab

async function acknowledge(alert, button) {
  let token = sessionStorage.getItem("stationmon-token");
  if (!token) token = prompt("Bearer token for acknowledging alerts ([http] token_env):");
  if (!token) return;
  const by = prompt("Acknowledged by (your name):", sessionStorage.getItem("stationmon-by") || "");
  if (!by) return;
  button.disabled = true;
  const res = await fetch(`/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`, {
    method: "POST", cache: "no-store",
    headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ by }),
  });
  if (res.status === 401) sessionStorage.removeItem("stationmon-token");
  else { sessionStorage.setItem("stationmon-token", token); sessionStorage.setItem("stationmon-by", by); }
  if (!res.ok) {
    button.disabled = false;
    showError(`acknowledge ${alert.rule}: HTTP ${res.status}`);
    return;
  }
  refreshStations();
}

function renderAlert(st, a) {
  const acked = a.acknowledged_by
    ? el("span", { class: "acked", text: `acknowledged by ${a.acknowledged_by} ${clock(a.acknowledged_at)}` })
    : el("button", { type: "button", class: "ack", "data-ack": a.id, text: "acknowledge" });
  if (!a.acknowledged_by) acked.addEventListener("click", () => acknowledge(a, acked));
  // one line each, the message on hover: a station short of heat easily has six alerts
  return el("li", { "data-alert": a.id, "data-station": st.id, class: a.severity, title: a.message || "" },
    el("span", { class: `chip ${a.severity}`, text: a.severity }),
    el("strong", { text: a.rule }),
    el("span", { text: `${a.loop ? `${a.loop} · ` : ""}since ${clock(a.since)}` }),
    typeof a.value === "number" ? el("span", { class: "message", text: fmtPair(a.value, a.threshold).join(" / ") }) : null,
    acked);
}

// the most severe first; past ALERTS_SHOWN the rest fold away (a station short of heat has many)
const ALERTS_SHOWN = 3;
function alertList(st, alerts) {
  if (!alerts.length) return [];
  const sorted = [...alerts].sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity));
  const shown = el("ul", { class: "alerts" }, ...sorted.slice(0, ALERTS_SHOWN).map((a) => renderAlert(st, a)));
  if (sorted.length <= ALERTS_SHOWN) return [shown];
  const rest = sorted.slice(ALERTS_SHOWN);
  return [shown, el("details", { class: "more-alerts" },
    el("summary", { text: `${rest.length} more alert(s)` }),
    el("ul", { class: "alerts" }, ...rest.map((a) => renderAlert(st, a))))];
}

function renderStation(st) {
  const outdoor = st.values.outdoor_temp ? `outdoor ${fmt(st.values.outdoor_temp.value)} °C · ` : "";
  const stale = st.status === "offline";
  const seen = st.last_seen === null ? null : Math.max(0, state.serverNow() - st.last_seen);
  const grafana = st.grafana_url ? el("a", { class: "grafana", href: st.grafana_url, target: "_blank", rel: "noopener noreferrer", text: "Grafana ↗" }) : null;
  const alerts = st.alerts || [];
  return el(
    "article",
    { class: `station ${st.status}${st.active_alerts ? " has-alerts" : ""}`, id: `station-${st.id}`,
      "data-station": st.id, "data-status": st.status, "data-alerts": String(st.active_alerts || 0),
      "data-district": st.district || "", "data-company": st.company || "" },
    el("div", { class: "station-head" },
      el("div", {},
        el("div", { class: "station-name", text: st.name || st.id }),
        el("div", { class: "station-meta", text: stationMeta(st) })),
      el("div", { class: "station-tools" }, grafana, el("span", { class: `chip ${st.status}`, text: st.status }))),
    el("div", { class: "station-meta" },
      outdoor,
      el("span", { class: stale ? "stale" : null, title: "the station's own equipment (PLC, its MQTT points), not household sensors", text: `latest station reading ${age(seen)}` }),
      st.active_alerts ? el("span", { class: "station-alerts", text: ` · ${st.active_alerts} alert(s)` }) : null),
    ...alertList(st, alerts),
    ...st.loops.map((loop) => renderLoop(st, loop)),
  );
}

function pager(doc) {
  const nav = [];
  const go = (page, text, disabled) => {
    const b = el("button", { type: "button", text });
    b.disabled = disabled;
    b.addEventListener("click", () => { state.pageNo = page; filtersToUrl(); refreshStations(); });
    return b;
  };
  if (doc.pages > 1) {
    nav.push(go(1, "« first", doc.page <= 1), go(doc.page - 1, "‹ previous", doc.page <= 1));
    nav.push(el("span", { class: "page-of", text: `page ${doc.page} of ${doc.pages}` }));
    nav.push(go(doc.page + 1, "next ›", doc.page >= doc.pages), go(doc.pages, "last »", doc.page >= doc.pages));
  }
  return nav;
}

function renderStations(doc) {
  state.margin = typeof doc.margin === "number" ? doc.margin : 1.0;
  document.getElementById("stations").replaceChildren(...doc.stations.map(renderStation));
  document.getElementById("matching").textContent = String(doc.matching);
  document.getElementById("total").textContent = String(doc.total);
  document.getElementById("pager-top").replaceChildren(...pager(doc));
  document.getElementById("pager-bottom").replaceChildren(...pager(doc));
}

// ------------------------------------------------------------------------------------------------
// Data

// The charts of the page's stations: one request for all of them, then only the points since the newest.
async function loadHistory(doc) {
  const ids = doc.stations.map((s) => s.id);
  const key = ids.join(",");
  if (!ids.length) return false;
  const fresh = key !== state.historyKey;
  if (!fresh && Date.now() - state.historyAt < HISTORY_EVERY_MS) return false;
  let since = 0;
  if (!fresh) for (const byLoop of Object.values(state.history)) for (const qs of Object.values(byLoop)) for (const pts of Object.values(qs)) if (pts.length) since = Math.max(since, pts[pts.length - 1][0]);
  const url = `/api/v1/history?stations=${encodeURIComponent(key)}&quantity=supply_temp,return_temp&max_points=${CHART_POINTS}` + (since ? `&since=${since}` : "");
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const got = await res.json();
  const out = fresh ? {} : state.history;
  const cutoff = Date.now() / 1000 - got.window_s;
  for (const [sid, series] of Object.entries(got.stations)) {
    const byLoop = out[sid] = out[sid] || {};
    for (const s of series) {
      if (!s.loop || s.sensor) continue;
      const held = (byLoop[s.loop] = byLoop[s.loop] || {})[s.quantity] || [];
      const last = held.length ? held[held.length - 1][0] : -Infinity;
      byLoop[s.loop][s.quantity] = held.concat(s.points.filter((p) => p[0] > last)).filter((p) => p[0] >= cutoff).slice(-CHART_POINTS * 2);
    }
  }
  state.history = out;
  state.historyKey = key;
  state.historyAt = Date.now();
  state.historyWindow = got.window_s;
  return true;
}

// "3 s", "12 min", "2.5 h"
function span(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// The legend says what the charts cover: the longest span a chart draws, first point to last (a fresh
// start holds seconds, not the hours the server may keep), and the window the server keeps.
function describeCharts() {
  const node = document.getElementById("chart-span");
  if (!node || state.historyWindow === undefined) return;
  let longest = -1;
  for (const byLoop of Object.values(state.history)) {
    for (const qs of Object.values(byLoop)) {
      const times = Object.values(qs).flat().map((p) => p[0]);
      if (times.length > 1) longest = Math.max(longest, Math.max(...times) - Math.min(...times));
    }
  }
  const kept = `kept up to ${span(state.historyWindow)}`;
  const held = longest < 0 ? "no history yet" : longest < 1 ? "a moment of history so far" : `up to ${span(longest)} of history`;
  node.textContent = `charts: ${held} (${kept})`;
  node.dataset.seconds = longest >= 0 ? String(Math.round(longest)) : "";
}

function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.hidden = !text;
}

function loaded() {
  if (document.body.dataset.loaded === "true") return;
  document.body.dataset.loaded = "true";
  // time to first render, from the navigation's start (the benchmark reads it)
  document.body.dataset.firstRenderMs = performance.now().toFixed(0);
}

async function refreshStations() {
  const url = stationsUrl();
  const { doc, changed } = await getJSON(url);
  if (doc.page > doc.pages && doc.pages > 0) { // the list shrank under us: show its last page
    state.pageNo = doc.pages;
    filtersToUrl();
    return refreshStations();
  }
  // the server's clock, for ages between evaluations (the page is built once per evaluation); a 304's
  // copy was built earlier, so only a fresh body sets it
  if (changed) {
    const offset = doc.generated_at - Date.now() / 1000;
    state.serverNow = () => Date.now() / 1000 + offset;
  }
  const charts = await loadHistory(doc);
  if (changed || charts) renderStations(doc);
  describeCharts();
  state.page = doc;
}

async function refresh() {
  try {
    const [summary] = await Promise.all([getJSON("/api/v1/summary"), refreshStations()]);
    if (summary.changed) renderSummary(summary.doc);
    state.summary = summary.doc;
    showError("");
    loaded();
    document.getElementById("updated").textContent = `checked ${clock(Date.now() / 1000)} · every ${REFRESH_MS / 1000} s`;
  } catch (err) {
    showError(`Cannot reach stationmon: ${err.message}. Retrying…`);
  }
}

state.serverNow = () => Date.now() / 1000;
let typing = null;
for (const id of Object.keys(URL_KEYS)) {
  document.getElementById(id).addEventListener("input", () => {
    state.pageNo = 1;
    filtersToUrl();
    clearTimeout(typing);
    typing = setTimeout(() => refreshStations().catch((err) => showError(err.message)), 250);
  });
}
filtersFromUrl();
refresh();
setInterval(refresh, REFRESH_MS);
