#include "node/status_page.hpp"

#include <CivetServer.h>
#include <civetweb.h>

#include <cstring>

namespace kura::node {

namespace {

constexpr std::string_view page = R"kura_page(
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kura status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#23303f;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:baseline}
header h1{font-size:18px;margin:0}
header span{opacity:.8}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(430px,1fr));gap:14px;padding:14px}
section{overflow-x:auto;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 14px}
h2{font-size:14px;margin:0 0 8px;color:#3a4b5e;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{padding:2px 5px;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}
th{font-weight:600;color:#5a6b7e;border-bottom:1px solid #e5e9ee}
.big{font-size:26px;font-weight:600}
.kv{display:grid;grid-template-columns:auto auto;gap:2px 12px}
.kv div:nth-child(odd){color:#5a6b7e}
.bad{color:#b3261e;font-weight:600}
.ok{color:#1e7b34}
#err{color:#b3261e}
</style>
</head>
<body>
<header><h1>kura</h1><span id="where"></span><span id="updated">loading…</span><span id="err"></span></header>
<main>
<section><h2>Requests</h2>
<div class="kv">
<div>commands / s</div><div class="big" id="ops">–</div>
<div>commands (total)</div><div id="calls">–</div>
<div>errors / s</div><div id="errs">–</div>
<div>latency p50</div><div id="p50">–</div>
<div>latency p99</div><div id="p99">–</div>
<div>clients connected</div><div id="clients">–</div>
<div>connections (total)</div><div id="conns">–</div>
<div>refused (max clients)</div><div id="refused">–</div>
</div></section>
<section><h2>Tiers</h2>
<table><thead><tr><th>tier</th><th>hit ratio</th><th>now</th><th>hits</th><th>entries</th><th>bytes</th><th>evicted</th></tr></thead>
<tbody id="tiers"></tbody></table>
<div class="kv" style="margin-top:8px">
<div>overall hit ratio</div><div class="big" id="hitratio">–</div>
<div>L3 write-behind queue</div><div id="l3queue">–</div>
<div>L3 uncommitted writes</div><div id="l3pending">–</div>
</div></section>
<section><h2>Top commands</h2>
<table><thead><tr><th>command</th><th>calls</th><th>/ s</th><th>errors</th></tr></thead>
<tbody id="commands"></tbody></table></section>
<section><h2>Archive (L4)</h2>
<div class="kv">
<div>entries</div><div id="a-entries">–</div>
<div>segments</div><div id="a-segments">–</div>
<div>stored bytes</div><div id="a-stored">–</div>
<div>compression ratio</div><div id="a-ratio">–</div>
</div></section>
<section><h2>Predictor</h2>
<div class="kv">
<div>prewarm loads</div><div id="p-loads">–</div>
<div>prewarm hits</div><div id="p-hits">–</div>
<div>precision</div><div id="p-precision">–</div>
<div>bytes loaded</div><div id="p-bytes">–</div>
<div>tracked keys</div><div id="p-keys">–</div>
</div>
<h2 style="margin-top:10px">Alerts</h2>
<table><thead><tr><th>kind</th><th>active</th><th>raised</th></tr></thead><tbody id="alerts"></tbody></table>
</section>
<section><h2>Cluster</h2><table><tbody id="cluster"><tr><td>not a cluster node</td></tr></tbody></table></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function parse(text) {
  const out = [];
  const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const labRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const r = lineRe.exec(line);
    if (!r) continue;
    const labels = {};
    if (r[2]) {
      let x;
      labRe.lastIndex = 0;
      while ((x = labRe.exec(r[2]))) labels[x[1]] = x[2].replace(/\\(.)/g, (a, c) => (c === "n" ? "\n" : c));
    }
    out.push({ name: r[1], labels, value: parseFloat(r[3]) });
  }
  return out;
}
function sum(ms, name, pred) {
  let s = 0, any = false;
  for (const m of ms) if (m.name === name && (!pred || pred(m.labels))) { s += m.value; any = true; }
  return any ? s : NaN;
}
function byLabel(ms, name, label) {
  const o = {};
  for (const m of ms) if (m.name === name) o[m.labels[label] || ""] = (o[m.labels[label] || ""] || 0) + m.value;
  return o;
}
function num(v, digits) {
  if (!isFinite(v)) return "–";
  if (digits !== undefined) return v.toFixed(digits);
  return Math.round(v).toLocaleString("en-US");
}
function bytes(v) {
  if (!isFinite(v)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; ++i; }
  return (i ? v.toFixed(1) : String(Math.round(v))) + " " + u[i];
}
function pct(v) { return isFinite(v) ? (100 * v).toFixed(1) + " %" : "–"; }
function secs(v) {
  if (!isFinite(v)) return "–";
  if (v < 1e-3) return (v * 1e6).toFixed(1) + " µs";
  if (v < 1) return (v * 1e3).toFixed(2) + " ms";
  return v.toFixed(2) + " s";
}
// cumulative bucket counts summed over every command: le -> count
function buckets(ms) {
  const b = new Map();
  for (const m of ms)
    if (m.name === "kura_command_duration_seconds_bucket") {
      const le = m.labels.le === "+Inf" ? Infinity : parseFloat(m.labels.le);
      b.set(le, (b.get(le) || 0) + m.value);
    }
  return b;
}
function quantile(b, q) {
  const les = [...b.keys()].sort((x, y) => x - y);
  if (!les.length) return NaN;
  const total = b.get(les[les.length - 1]);
  if (!(total > 0)) return NaN;
  for (const le of les) if (b.get(le) >= q * total) return le;
  return Infinity;
}
function row(cells, cls) {
  const tr = document.createElement("tr");
  cells.forEach((c, i) => {
    const td = document.createElement("td");
    td.textContent = c;
    if (cls && cls[i]) td.className = cls[i];
    tr.appendChild(td);
  });
  return tr;
}
let prev = null;
function render(ms, now) {
  const calls = sum(ms, "kura_command_calls_total");
  // the node pushes its counters once per second: a sample that saw no new
  // command is kept out of the rates (up to 5 s) instead of showing 0/s
  if (prev && calls === prev.calls && now - prev.t < 5000) return;
  const dt = prev ? (now - prev.t) / 1000 : 0;
  const rate = (cur, old) => (dt > 0 && isFinite(old) ? Math.max(0, cur - old) / dt : NaN);
  const errs = sum(ms, "kura_command_errors_total");
  $("calls").textContent = num(calls);
  $("ops").textContent = num(rate(calls, prev && prev.calls));
  $("errs").textContent = num(rate(errs, prev && prev.errs), 1);
  let b = buckets(ms);
  if (prev) { // the latency of the last interval when there was traffic in it
    const d = new Map();
    for (const [le, c] of b) d.set(le, c - (prev.buckets.get(le) || 0));
    if ((d.get(Infinity) || 0) > 0) b = d;
  }
  $("p50").textContent = secs(quantile(b, 0.5));
  $("p99").textContent = secs(quantile(b, 0.99));
  $("clients").textContent = num(sum(ms, "kura_connected_clients"));
  $("conns").textContent = num(sum(ms, "kura_connections_received_total"));
  $("refused").textContent = num(sum(ms, "kura_connections_rejected_total"));
  const hits = byLabel(ms, "kura_tier_hits_total", "tier");
  const misses = byLabel(ms, "kura_tier_misses_total", "tier");
  const entries = byLabel(ms, "kura_tier_entries", "tier");
  const tb = byLabel(ms, "kura_tier_bytes", "tier");
  const ev = byLabel(ms, "kura_tier_evictions_total", "tier");
  const tiers = $("tiers");
  tiers.textContent = "";
  let served = 0, first = null;
  for (const t of Object.keys(hits).sort()) { // l1, l2, l3, l4: the lookup order
    const h = hits[t], m = misses[t] || 0;
    const ph = prev ? prev.hits[t] : undefined, pm = prev ? prev.misses[t] : undefined;
    const dh = ph !== undefined ? h - ph : NaN, dm = pm !== undefined ? m - pm : NaN;
    tiers.appendChild(row([t, pct(h / (h + m)), dh + dm > 0 ? pct(dh / (dh + dm)) : "–", num(h), num(entries[t]), bytes(tb[t]), num(ev[t])]));
    served += h;
    if (first === null) first = t;
  }
  // every lookup starts at the first tier (l1): its hits+misses are all lookups
  const lookups = first === null ? NaN : hits[first] + (misses[first] || 0);
  $("hitratio").textContent = lookups > 0 ? pct(served / lookups) : "–";
  $("l3queue").textContent = num(sum(ms, "kura_l3_write_behind_queue"));
  $("l3pending").textContent = num(sum(ms, "kura_l3_uncommitted_writes"));
  const cc = byLabel(ms, "kura_command_calls_total", "command");
  const ce = byLabel(ms, "kura_command_errors_total", "command");
  const cmds = $("commands");
  cmds.textContent = "";
  Object.keys(cc).sort((x, y) => cc[y] - cc[x]).slice(0, 10).forEach((c) =>
    cmds.appendChild(row([c, num(cc[c]), num(rate(cc[c], prev && prev.cc[c])), num(ce[c] || 0)])));
  $("a-entries").textContent = num(sum(ms, "kura_archive_entries"));
  $("a-segments").textContent = num(sum(ms, "kura_archive_segments"));
  $("a-stored").textContent = bytes(sum(ms, "kura_archive_stored_bytes"));
  $("a-ratio").textContent = num(sum(ms, "kura_archive_compression_ratio"), 2);
  $("p-loads").textContent = num(sum(ms, "kura_prewarm_loads_total"));
  $("p-hits").textContent = num(sum(ms, "kura_prewarm_hits_total"));
  $("p-precision").textContent = num(sum(ms, "kura_prewarm_precision"), 2);
  $("p-bytes").textContent = bytes(sum(ms, "kura_prewarm_bytes_total"));
  $("p-keys").textContent = num(sum(ms, "kura_predictor_tracked_keys"));
  const active = byLabel(ms, "kura_alerts_active", "kind");
  const raised = byLabel(ms, "kura_alerts_raised_total", "kind");
  const al = $("alerts");
  al.textContent = "";
  for (const k of Object.keys(Object.assign({}, active, raised)).sort())
    al.appendChild(row([k, num(active[k] || 0), num(raised[k] || 0)], [null, active[k] > 0 ? "bad" : "ok", null]));
  const cl = ms.filter((m) => m.name.startsWith("kura_cluster_"));
  if (cl.length) {
    const ct = $("cluster");
    ct.textContent = "";
    for (const m of cl) {
      const l = Object.entries(m.labels).map(([k, v]) => k + "=" + v).join(",");
      ct.appendChild(row([m.name.slice(5) + (l ? "{" + l + "}" : ""), num(m.value, Number.isInteger(m.value) ? undefined : 3)]));
    }
  }
  prev = { t: now, calls, errs, buckets: buckets(ms), hits, misses, cc };
}
async function refresh() {
  try {
    const r = await fetch("metrics", { cache: "no-store" });
    if (!r.ok) throw new Error("/metrics answered " + r.status);
    render(parse(await r.text()), Date.now());
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    $("err").textContent = "";
  } catch (e) {
    $("err").textContent = String(e.message || e);
  }
}
$("where").textContent = location.host;
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)kura_page";

/// Answers GET / and GET /index.html; returns 0 (not handled) for the rest.
int begin_request(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  if (ri == nullptr || ri->local_uri == nullptr)
    return 0;
  if (std::strcmp(ri->local_uri, "/") != 0 && std::strcmp(ri->local_uri, "/index.html") != 0)
    return 0;
  bool head = ri->request_method != nullptr && std::strcmp(ri->request_method, "HEAD") == 0;
  bool get = ri->request_method != nullptr && std::strcmp(ri->request_method, "GET") == 0;
  if (!get && !head) {
    mg_printf(conn, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n");
    return 405;
  }
  auto body = status_page_html();
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
            "Content-Security-Policy: default-src 'self'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'\r\n"
            "Content-Length: %zu\r\nConnection: close\r\n\r\n",
            body.size());
  if (!head)
    mg_write(conn, body.data(), body.size());
  return 200;
}

} // namespace

std::string_view status_page_html() noexcept {
  return page.substr(1); // the literal starts with a newline
}

const CivetCallbacks* status_page_callbacks() noexcept {
  static const CivetCallbacks cb = [] {
    CivetCallbacks c{};
    c.begin_request = &begin_request;
    return c;
  }();
  return &cb;
}

} // namespace kura::node
