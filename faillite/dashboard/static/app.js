// faillite dashboard: /v1/status for the picture, /v1/events/watch (WebSocket) to keep it live.
"use strict";

const MAIN_KINDS = new Set([
  "failure_suspected", "node_dead", "node_rejoined", "progressive_step", "app_recovered",
  "app_lost", "failback", "plan_changed", "node_registered",
]);
const BACKLOG = 300; // events shown from before the page opened
let lastId = 0;
let events = [];
let refreshTimer = null;
let backoffMs = 250;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`);
const modeLabel = (m) => ({
  failed_over_warm: "failed over (warm)", failed_over_cold: "failed over (cold)",
  stepping: "stepping stone", recovering: "recovering",
}[m] || m);

function renderNodes(nodes) {
  const box = document.getElementById("nodes");
  box.replaceChildren(...nodes.map((n) => {
    const total = n.memory_bytes || 1;
    const seg = (kind, bytes) => el("div", {
      class: `seg ${kind}`, style: `width:${Math.min(100, (100 * bytes) / total)}%`,
      title: `${kind}: ${mib(bytes)}`,
    });
    const p = n.planned;
    const up = n.state === "alive" || n.state === "suspect";
    return el("div", { class: `node ${n.state}`, "data-node": n.id, "data-state": n.state },
      el("div", { class: "head" },
        el("span", { class: "name" }, n.id),
        el("span", { class: `badge state ${n.state}` }, up ? n.state : n.state === "dead" ? "down" : n.state)),
      el("div", { class: "bar" }, seg("primary", p.primary), seg("warm", p.warm), seg("cold", p.cold),
        up ? el("div", { class: "usedmark", style: `width:${Math.min(100, (100 * n.used_bytes) / total)}%` }) : null),
      el("div", { class: "mem" },
        `${mib(p.primary)} primaries · ${mib(p.warm)} warm · ${mib(p.cold)} cold of ${mib(n.memory_bytes)}`,
        up ? ` · ${mib(n.used_bytes)} in use` : "", ` · epoch ${n.epoch}`),
      el("div", { class: "models" }, up ? (n.loaded.join(", ") || "nothing loaded") : "unreachable"));
  }));
}

function renderApps(apps) {
  const body = document.querySelector("#apps tbody");
  body.replaceChildren(...apps.map((a) => {
    const serving = a.node ? [`${a.variant}`, el("div", { class: "sub" }, `on ${a.node}`)] : ["—"];
    const drop = a.accuracy_drop ? el("div", { class: "sub drop" }, `−${(a.accuracy_drop * 100).toFixed(1)} pts`) : null;
    const route = a.route.length ? a.route.map((t) => `${t.node} (${t.role})`).join(" → ") : "no target";
    const protection = a.backup
      ? [`${a.backup.mode} on ${a.backup.node}`, el("div", { class: "sub" }, a.backup.variant)]
      : [el("span", { class: "unprotected" }, "unprotected")];
    return el("tr", { "data-app": a.name, "data-state": a.mode },
      el("td", {}, el("b", {}, a.name), el("div", { class: "sub" }, a.spec.critical ? "critical" : a.spec.family)),
      el("td", {}, el("span", { class: `badge state ${a.mode}` }, modeLabel(a.mode))),
      el("td", { class: "serving" }, serving),
      el("td", {}, pct(a.accuracy), drop),
      el("td", { class: "route" }, route),
      el("td", {}, protection));
  }));
}

function describe(e) {
  switch (e.kind) {
    case "failure_suspected": return [`failure of ${e.node} suspected (${e.reason})`, "bad"];
    case "node_dead": return [`${e.node} declared dead: ${e.reason} (detected in ${e.detection_ms} ms)`, "bad"];
    case "node_rejoined": return [`${e.node} rejoined (epoch ${e.epoch})`, "good"];
    case "node_registered": return [`${e.node} registered (epoch ${e.epoch})`, "minor"];
    case "node_adopted": return [`${e.node} adopted (epoch ${e.epoch})`, "minor"];
    case "progressive_step":
      return [`${e.app}: progressive step ${e.step} → ${e.variant} on ${e.node}${e.stone ? " (stepping stone)" : ""}`, ""];
    case "app_recovered":
      return [[`${e.app} recovered on ${e.node} (${e.variant}) — MTTR `,
        el("span", { class: "mttr" }, `${e.recovery_ms} ms`)], "good"];
    case "app_lost": return [`${e.app} lost: ${e.reason}`, "bad"];
    case "failback": return [`failback: ${(e.apps || []).join(", ") || "plan restored"}`, "good"];
    case "plan_changed": return [`plan changed (${e.reason})${e.protected === false ? ", not fully protected" : ""}`, "minor"];
    case "route_changed": return [`${e.app} → ${e.node} (${e.variant}), ${e.state}: ${e.reason}`, "minor"];
    case "load_started": return [`load ${e.variant} on ${e.node} for ${e.app} (${e.reason})`, "minor"];
    case "load_finished": return [`loaded ${e.variant} on ${e.node} in ${e.ms} ms`, "minor"];
    case "load_failed": return [`load of ${e.variant} on ${e.node} failed: ${e.error}`, "bad"];
    default: return [`${e.kind.replaceAll("_", " ")} ${e.app || e.node || ""}`, "minor"];
  }
}

function timeOf(ts) {
  const d = new Date(ts * 1000);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function renderTimeline() {
  const all = document.getElementById("all-events").checked;
  const shown = events.filter((e) => all || MAIN_KINDS.has(e.kind)).slice(-400).reverse();
  document.getElementById("timeline").replaceChildren(...shown.map((e) => {
    const [text, cls] = describe(e);
    return el("li", { class: cls, "data-kind": e.kind, "data-id": e.id },
      el("time", {}, timeOf(e.ts)), el("span", {}, text));
  }));
  const lastDead = events.findLastIndex((e) => e.kind === "node_dead");
  const box = document.getElementById("last-failure");
  if (lastDead < 0) { box.replaceChildren(); return; }
  const failure = events[lastDead];
  const mttrs = events.slice(lastDead).filter((e) => e.kind === "app_recovered" && e.failed_node === failure.node)
    .map((e) => e.recovery_ms);
  const mean = mttrs.length ? (mttrs.reduce((s, x) => s + x, 0) / mttrs.length).toFixed(1) : null;
  box.replaceChildren(el("b", {}, `Last failure: ${failure.node}`), ` at ${timeOf(failure.ts)} — `,
    mttrs.length ? `${mttrs.length} app(s) recovered, mean MTTR ${mean} ms, max ${Math.max(...mttrs)} ms`
      : "apps recovering…");
}

function render(status) {
  renderNodes(status.nodes);
  renderApps(status.apps);
  const up = status.nodes.filter((n) => n.state === "alive" || n.state === "suspect").length;
  const serving = status.apps.filter((a) => a.node).length;
  document.getElementById("summary").textContent =
    `${up}/${status.nodes.length} nodes up · ${serving}/${status.apps.length} apps serving · routes v${status.route_version}`;
}

async function refresh() {
  try {
    const response = await fetch("/v1/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const status = await response.json();
    render(status);
    return status;
  } catch (err) {
    document.getElementById("summary").textContent = `controller unreachable (${err.message})`;
    return null;
  }
}

function scheduleRefresh() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 40);
}

function setConn(up, text) {
  const conn = document.getElementById("conn");
  conn.className = `conn ${up ? "up" : "down"}`;
  conn.textContent = text;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/events/watch?since=${lastId}`);
  ws.onopen = () => { backoffMs = 250; setConn(true, "live"); refresh(); };
  ws.onmessage = (msg) => {
    const event = JSON.parse(msg.data);
    if (event.id <= lastId) return;
    lastId = event.id;
    events.push(event);
    if (events.length > 2000) events = events.slice(-1000);
    renderTimeline();
    scheduleRefresh();
  };
  ws.onclose = () => {
    setConn(false, "reconnecting…");
    setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 5000);
  };
}

document.getElementById("all-events").addEventListener("change", renderTimeline);
refresh().then((status) => {
  if (status) lastId = Math.max(0, status.last_event_id - BACKLOG);
  connect();
});
