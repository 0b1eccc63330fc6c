// stationmon status page: plain DOM and inline SVG, no libraries, nothing fetched from outside.
// Reads /api/v1/stations, /api/v1/alerts and /api/v1/history; refreshes itself every REFRESH_MS.
"use strict";

const REFRESH_MS = 5000;
const HISTORY_EVERY_MS = 15000;
const SVG_NS = "http://www.w3.org/2000/svg";
const PROBLEMS = new Set(["noncompliant", "sensor_fault", "offline"]);

const state = { stations: [], alerts: [], history: {}, historyAt: 0, margin: 1.0 };

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
  return typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "–";
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function clock(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : "–";
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

// ------------------------------------------------------------------------------------------------
// Filters

function filters() {
  return {
    district: document.getElementById("filter-district").value,
    company: document.getElementById("filter-company").value,
    status: document.getElementById("filter-status").value,
    text: document.getElementById("filter-text").value.trim().toLowerCase(),
  };
}

function visible(st, f) {
  if (f.district && st.district !== f.district) return false;
  if (f.company && st.company !== f.company) return false;
  if (f.status === "problem" && !PROBLEMS.has(st.status) && !st.active_alerts) return false;
  if (f.status && f.status !== "problem" && st.status !== f.status) return false;
  if (f.text && !`${st.id} ${st.name}`.toLowerCase().includes(f.text)) return false;
  return true;
}

function fillChoices(id, key) {
  const select = document.getElementById(id);
  const have = new Set([...select.options].map((o) => o.value));
  const values = [...new Set(state.stations.map((s) => s[key]).filter(Boolean))].sort();
  for (const v of values) if (!have.has(v)) select.append(el("option", { value: v, text: v }));
}

function fillFilters() {
  fillChoices("filter-district", "district");
  fillChoices("filter-company", "company");
}

// ------------------------------------------------------------------------------------------------
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
  const text = `${fmt(v.value)} °C` + (typeof required === "number" ? ` / ${fmt(required)}` : "");
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

function renderStation(st) {
  const outdoor = st.values.outdoor_temp ? `outdoor ${fmt(st.values.outdoor_temp.value)} °C · ` : "";
  const stale = st.status === "offline";
  return el(
    "article",
    { class: `station ${st.status}${st.active_alerts ? " has-alerts" : ""}`, id: `station-${st.id}`,
      "data-station": st.id, "data-status": st.status, "data-alerts": String(st.active_alerts || 0),
      "data-district": st.district || "", "data-company": st.company || "" },
    el("div", { class: "station-head" },
      el("div", {},
        el("div", { class: "station-name", text: st.name || st.id }),
        el("div", { class: "station-meta", text: stationMeta(st) })),
      el("span", { class: `chip ${st.status}`, text: st.status })),
    el("div", { class: "station-meta" },
      outdoor,
      el("span", { class: stale ? "stale" : null, title: "the station's own equipment (PLC, its MQTT points), not household sensors", text: `latest station reading ${age(st.age_s)}` }),
      st.active_alerts ? el("span", { class: "station-alerts", text: ` · ${st.active_alerts} alert(s)` }) : null),
    ...st.loops.map((loop) => renderLoop(st, loop)),
  );
}

function renderAlerts() {
  const f = filters();
  const byId = Object.fromEntries(state.stations.map((s) => [s.id, s]));
  const rows = state.alerts.filter((a) => !byId[a.station] || visible(byId[a.station], f));
  const tbody = document.querySelector("#alerts tbody");
  tbody.replaceChildren(...rows.map((a) => el("tr", { "data-alert": a.id || a.alert_id || "", "data-station": a.station },
    el("td", { text: clock(a.since) }),
    el("td", {}, el("span", { class: `chip ${a.severity}`, text: a.severity })),
    el("td", { text: a.rule }),
    el("td", { text: (byId[a.station] && byId[a.station].name) || a.station }),
    el("td", { text: a.company || "" }),
    el("td", { text: a.loop || "" }),
    el("td", { text: `${fmt(a.value)} / ${fmt(a.threshold)}` }),
    el("td", { text: a.message || "" }))));
  document.getElementById("alert-count").textContent = String(state.alerts.length);
  document.getElementById("alerts").hidden = rows.length === 0;
  document.getElementById("no-alerts").hidden = rows.length !== 0;
}

function renderSummary() {
  const counts = {};
  for (const s of state.stations) counts[s.status] = (counts[s.status] || 0) + 1;
  const box = document.getElementById("summary");
  box.replaceChildren(...Object.entries(counts).sort().map(([k, n]) => el("span", { class: `chip ${k}`, text: `${n} ${k}` })));
}

function render() {
  const f = filters();
  const shown = state.stations.filter((s) => visible(s, f));
  // problems first, then by district and name, so the eye lands on what needs attention
  const rank = { offline: 0, noncompliant: 1, sensor_fault: 2, unknown: 3, ok: 4 };
  const weight = (s) => (rank[s.status] ?? 5) - (s.active_alerts ? 0.5 : 0);
  shown.sort((a, b) => weight(a) - weight(b) || (a.district || "").localeCompare(b.district || "") || a.id.localeCompare(b.id));
  document.getElementById("stations").replaceChildren(...shown.map(renderStation));
  document.getElementById("station-count").textContent = `${shown.length} / ${state.stations.length}`;
  renderSummary();
  renderAlerts();
}

// ------------------------------------------------------------------------------------------------
// Data

async function loadHistory() {
  const out = {};
  await Promise.all(state.stations.map(async (st) => {
    const doc = await getJSON(`/api/v1/history?station=${encodeURIComponent(st.id)}`);
    const byLoop = {};
    for (const s of doc.series) {
      if (!s.loop || s.sensor) continue;
      (byLoop[s.loop] = byLoop[s.loop] || {})[s.quantity] = s.points;
    }
    out[st.id] = byLoop;
  }));
  state.history = out;
  state.historyAt = Date.now();
}

async function refresh() {
  const errorBox = document.getElementById("error");
  try {
    const [stations, alerts] = await Promise.all([getJSON("/api/v1/stations"), getJSON("/api/v1/alerts")]);
    state.stations = stations.stations;
    state.alerts = alerts.alerts;
    state.margin = typeof stations.margin === "number" ? stations.margin : 1.0;
    const shard = stations.shard && stations.shard.count > 1 ? ` · shard ${stations.shard.index}/${stations.shard.count}` : "";
    document.getElementById("site-name").textContent = (stations.site.name || "") + shard;
    fillFilters();
    if (Date.now() - state.historyAt > HISTORY_EVERY_MS) await loadHistory();
    render();
    errorBox.hidden = true;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;
    document.body.dataset.loaded = "true";
  } catch (err) {
    errorBox.textContent = `Cannot reach stationmon: ${err.message}. Retrying…`;
    errorBox.hidden = false;
  }
}

// Filters live in the URL too (?district=道里区&company=…&status=problem&q=youyi), so a view can be bookmarked.
const URL_KEYS = { "filter-district": "district", "filter-company": "company", "filter-status": "status", "filter-text": "q" };

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  for (const [id, key] of Object.entries(URL_KEYS)) {
    const value = params.get(key);
    if (value === null) continue;
    const control = document.getElementById(id);
    if (control.tagName === "SELECT" && ![...control.options].some((o) => o.value === value)) {
      control.append(el("option", { value, text: value }));
    }
    control.value = value;
  }
}

function filtersToUrl() {
  const params = new URLSearchParams();
  for (const [id, key] of Object.entries(URL_KEYS)) {
    const value = document.getElementById(id).value;
    if (value) params.set(key, value);
  }
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

for (const id of Object.keys(URL_KEYS)) {
  document.getElementById(id).addEventListener("input", () => { filtersToUrl(); render(); });
}
filtersFromUrl();
refresh();
setInterval(refresh, REFRESH_MS);
