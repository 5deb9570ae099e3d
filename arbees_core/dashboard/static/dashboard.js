// The arbees dashboard: one SSE stream (/api/stream): a `snapshot` event, then `update` events with what changed.
// Everything is drawn with textContent (venue strings are data, never markup). Charts: uPlot (vendored).
"use strict";

const S = { games: new Map(), signals: new Map(), trades: new Map(), source: "", charts: {} };
const KEEP = 200;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function num(v, digits = 2) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }
function pair(a, b) { return `${a ?? "–"} / ${b ?? "–"}`; }
function short(t) { return t.length > 16 ? t.slice(0, 15) + "…" : t; }
function time(ns) { return ns ? new Date(ns / 1e6).toISOString().slice(11, 23) : "–"; }
function row(cells, attrs = {}) {
  const tr = el("tr");
  for (const [k, v] of Object.entries(attrs)) tr.dataset[k] = v;
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function keepNewest(map) { while (map.size > KEEP) map.delete(map.keys().next().value); }

// ---- panels

function drawGames() {
  const rows = [];
  for (const g of [...S.games.values()].sort((a, b) => a.game_id.localeCompare(b.game_id))) {
    g.outcomes.forEach((o, i) => {
      const k = o.kalshi || {}, p = o.polymarket || {};
      const edge = el("td");
      if (o.edge) {
        edge.textContent = `${num(o.edge.edge_pct, 2)} % (${num(o.edge.edge_cents, 2)}¢, K ${o.edge.kalshi_side} + P ${o.edge.poly_side})`;
        edge.className = o.edge.tradeable ? "tradeable" : o.edge.edge_cents > 0 ? "pos" : "neg";
      } else edge.textContent = "–";
      const age = el("td", Math.max(k.age_ms ?? 0, p.age_ms ?? 0).toFixed(0), (k.stale || p.stale) ? "stale" : "");
      rows.push(row([i === 0 ? g.game_id : "", o.outcome, pair(k.yes_bid, k.yes_ask), pair(k.no_bid, k.no_ask),
        pair(p.yes_bid, p.yes_ask), pair(p.no_bid, p.no_ask), edge, age], { game: g.game_id, outcome: o.outcome }));
    });
  }
  fill(document.querySelector("#games tbody"), rows);
}

function legsText(legs) {
  return legs.map(l => `${l.venue} ${l.side} ${short(l.ticker)} ${l.status ? `${l.status} ${num(l.filled_qty, 0)}/${num(l.qty, 0)}` : `x${num(l.qty, 0)}`} @${num(l.avg_price ?? l.limit_price, 1)}`).join("  +  ");
}

function drawTrades(fresh = new Set()) {
  const rows = [...S.trades.values()].sort((a, b) => b.ts_fill_ns - a.ts_fill_ns).slice(0, 50).map(t => {
    const r = row([time(t.ts_fill_ns), t.signal_id, t.game_id, num(t.edge_pct, 3), t.transport,
      num(t.latency.price_ms, 3), num(t.latency.signal_ms, 3), num(t.latency.execution_ms, 3),
      num(t.latency.end_to_end_ms, 3), legsText(t.legs)], { signalId: t.signal_id });
    if (fresh.has(t.signal_id)) r.classList.add("new");
    return r;
  });
  fill(document.querySelector("#trades tbody"), rows);
}

function drawSignals() {
  const rows = [...S.signals.values()].sort((a, b) => b.ts_detect_ns - a.ts_detect_ns).slice(0, 50).map(s =>
    row([time(s.ts_detect_ns), s.signal_id, s.game_id, num(s.edge_pct, 3), legsText(s.legs)], { signalId: s.signal_id }));
  fill(document.querySelector("#signals tbody"), rows);
}

function drawHealth(health) {
  const rows = health.map(h => row([h.name, el("td", h.state, `state state-${h.state}`), h.mode || "–",
    el("td", h.restarts, "restarts"), h.exit_code ?? "–", h.lost, h.rejected,
    h.heartbeat_age_s === null ? "–" : `${num(h.heartbeat_age_s, 1)} s`], { service: h.name }));
  fill(document.querySelector("#health tbody"), rows);
}

function drawLatency(lat) {
  document.getElementById("latency-window").textContent = `p50 / p95 / p99 (ms) over the last ${lat.window_s} s of trades`;
  const rows = [];
  for (const [mode, hops] of Object.entries(lat.modes))
    for (const [hop, s] of Object.entries(hops))
      rows.push(row([mode, hop, s.count, num(s.p50_ms, 3), num(s.p95_ms, 3), num(s.p99_ms, 3)], { mode, hop }));
  fill(document.querySelector("#latency tbody"), rows);
  const modes = Object.keys(lat.histogram);
  if (!modes.length) return;
  const xs = [...lat.bounds_ms.keys(), lat.bounds_ms.length];
  const data = [xs, ...modes.map(m => lat.histogram[m])];
  const labels = [...lat.bounds_ms.map(b => `≤${b}`), `>${lat.bounds_ms.at(-1)}`];
  chart("latency", data, {
    series: [{}, ...modes.map((m, i) => ({ label: `end to end, ${m}`, stroke: ["#7ee2a1", "#8ab4f8"][i % 2],
      fill: ["#7ee2a155", "#8ab4f855"][i % 2], paths: uPlot.paths.bars({ size: [0.8] }) }))],
    scales: { x: { time: false } },
    axes: [{ stroke: "#7d8a99", values: (u, vals) => vals.map(v => labels[v] ?? ""), label: "ms" },
           { stroke: "#7d8a99", label: "trades" }],
  });
}

function drawRates(rates) {
  document.getElementById("rates-now").textContent =
    Object.entries(rates.per_s).map(([f, v]) => `${f} ${num(v, 1)}/s`).join(" · ") || "no messages yet";
  const fams = Object.keys(rates.series);
  if (!fams.length || !rates.series[fams[0]].length) return;
  const xs = rates.series[fams[0]].map(p => p[0]);
  const data = [xs, ...fams.map(f => rates.series[f].map(p => p[1]))];
  const colours = ["#7ee2a1", "#8ab4f8", "#f5dc9a", "#f08a8a", "#c7a0f5"];
  chart("rates", data, {
    series: [{}, ...fams.map((f, i) => ({ label: f, stroke: colours[i % colours.length] }))],
    axes: [{ stroke: "#7d8a99" }, { stroke: "#7d8a99", label: "msg/s" }],
  });
}

function chart(name, data, opts) {
  const box = document.getElementById(`${name}-chart`);
  const key = `${name}:${opts.series.length}`;
  const existing = S.charts[name];
  if (existing && existing.key === key) { existing.plot.setData(data); return; }
  if (existing) existing.plot.destroy();
  const plot = new uPlot({ width: box.clientWidth || 500, height: 180, legend: { show: true }, ...opts }, data, box);
  S.charts[name] = { key, plot };
}

function drawPositions(pos) {
  const status = document.getElementById("positions-status");
  status.textContent = pos.available
    ? `${pos.status}; open cost ${num(pos.open_cost_cents / 100, 2)} $, realised P&L ${num(pos.realised_pnl_cents / 100, 2)} $, unrealised ${pos.unrealised_pnl_cents === null ? "–" : num(pos.unrealised_pnl_cents / 100, 2) + " $"}`
    : pos.status;
  const rows = (pos.legs || []).map(l => row([l.pair_id, l.leg, l.game_id, `${l.venue} ${l.side} ${short(l.ticker)}`,
    `${num(l.open_qty, 0)} / ${num(l.qty, 0)}`, num(l.cost_cents, 2),
    l.mark_source === "tracker" ? `${num(l.mark_cents, 2)} (after fees)` : num(l.mark_cents, 2),
    el("td", num(l.unrealised_pnl_cents, 2), (l.unrealised_pnl_cents ?? 0) >= 0 ? "pos" : "neg"),
    num(l.realised_pnl_cents, 2), l.closed ? (l.close_reason || "closed") : "open"]));
  fill(document.querySelector("#positions tbody"), rows);
}

function drawApi(api) {
  S.source = api.source;
  const src = document.getElementById("source");
  src.textContent = api.source === "zmq"
    ? `live feed: ZMQ (${api.connected.length}/${api.endpoints.length} publishers connected)`
    : "live feed: Redis streams";
  src.dataset.source = api.source;
  src.className = "badge " + (api.source === "redis" || api.connected.length === api.endpoints.length ? "ok" : "warn");
  document.getElementById("api-status").textContent =
    `${api.messages} messages · ${api.clients} browsers · ${api.updates_dropped} updates dropped`;
}

// ---- events

function applyPanels(d) {
  if (d.latency) drawLatency(d.latency);
  if (d.rates) drawRates(d.rates);
  if (d.health) drawHealth(d.health);
  if (d.positions) drawPositions(d.positions);
  if (d.api) drawApi(d.api);
}

function onSnapshot(d) {
  S.games = new Map(d.games.map(g => [g.game_id, g]));
  S.signals = new Map(d.signals.reverse().map(s => [s.signal_id, s]));
  S.trades = new Map(d.trades.reverse().map(t => [t.signal_id, t]));
  drawGames(); drawSignals(); drawTrades(); applyPanels(d);
}

function onUpdate(d) {
  if (d.games) { for (const g of d.games) S.games.set(g.game_id, g); drawGames(); }
  if (d.signals) { for (const s of d.signals) S.signals.set(s.signal_id, s); keepNewest(S.signals); drawSignals(); }
  if (d.trades) {
    const fresh = new Set(d.trades.filter(t => !S.trades.has(t.signal_id)).map(t => t.signal_id));
    for (const t of d.trades) S.trades.set(t.signal_id, t);
    keepNewest(S.trades); drawTrades(fresh);
  }
  applyPanels(d);
}

function connect() {
  const badge = document.getElementById("stream");
  const es = new EventSource("/api/stream");
  es.addEventListener("open", () => { badge.textContent = "stream: live"; badge.className = "badge ok"; });
  es.addEventListener("error", () => { badge.textContent = "stream: reconnecting"; badge.className = "badge bad"; });
  es.addEventListener("snapshot", e => onSnapshot(JSON.parse(e.data)));
  es.addEventListener("update", e => onUpdate(JSON.parse(e.data)));
}

setInterval(() => { document.getElementById("clock").textContent = new Date().toISOString().slice(11, 19) + "Z"; }, 1000);
connect();
