// The status page's script: every second it reads /api/status and redraws
// the page. Everything from the node is put in as text (textContent and
// attributes), never as markup: agent versions and addresses come from
// the network.
"use strict";

const REFRESH_MS = 1000;
const CHART_SECONDS = 300;
const SVG_NS = "http://www.w3.org/2000/svg";

let refreshes = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmtDuration(ns) {
  if (!ns || ns <= 0) return "–";
  const ms = ns / 1e6;
  if (ms < 1) return (ns / 1e3).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  let s = Math.floor(ms / 1000);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return m + " min " + s + " s";
  const h = Math.floor(m / 60);
  return h + " h " + (m % 60) + " min";
}

function fmtRate(bps) {
  const units = ["B/s", "KB/s", "MB/s", "GB/s"];
  let i = 0;
  while (bps >= 1000 && i < units.length - 1) { bps /= 1000; i++; }
  return (bps < 10 && i > 0 ? bps.toFixed(1) : bps.toFixed(0)) + " " + units[i];
}

function fmtTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString();
}

function renderAddrs(id, addrs) {
  const ul = document.getElementById(id);
  const items = (addrs || []).map((a) => el("li", { "data-addr": a }, a));
  if (items.length === 0) items.push(el("li", { class: "empty" }, "none"));
  ul.replaceChildren(...items);
}

function protocolList(byProto) {
  const names = Object.keys(byProto || {}).sort();
  if (names.length === 0) return null;
  return el("span", { class: "protos" }, names.map((p) => p + " ×" + byProto[p]).join(", "));
}

function renderPeers(peers) {
  const rows = [];
  let conns = 0;
  for (const p of peers) {
    p.conns.forEach((c, i) => {
      conns++;
      const tr = el("tr", {
        class: i === 0 ? "first-conn" : "",
        "data-peer": p.id,
        "data-transport": c.transport,
        "data-direction": c.direction,
        "data-remote": c.remoteAddr,
      });
      tr.append(
        el("td", { class: "peer" }, i === 0 ? p.id : ""),
        el("td", {}, i === 0 ? (p.agent || "") : ""),
        el("td", { class: "num" }, fmtDuration(c.rttNs || (i === 0 ? p.rttNs : 0))),
        el("td", {}, el("span", { class: "tag" }, c.transport), c.limited ? " " : null,
          c.limited ? el("span", { class: "tag limited" }, "limited") : null),
        el("td", {}, c.security || "–"),
        // QUIC, WebTransport and WebRTC streams need no muxer of ours.
        el("td", {}, c.muxer || (c.transport === "tcp" || c.transport === "websocket" ? "–" : "native")),
        el("td", {}, c.direction),
        el("td", { class: "addr" }, c.remoteAddr),
        el("td", { class: "num" }, fmtDuration(c.ageNs)),
        el("td", { class: "num" }, c.streams, protocolList(c.streamsByProtocol)),
      );
      rows.push(tr);
    });
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { class: "empty", colSpan: 10 }, "no connected peers")));
  document.getElementById("peer-rows").replaceChildren(...rows);
  document.getElementById("peer-count").textContent =
    "(" + peers.length + (peers.length === 1 ? " peer, " : " peers, ") + conns + (conns === 1 ? " connection)" : " connections)");
}

function renderFailures(fails) {
  const rows = fails.map((f) => el("tr", { "data-peer": f.peer },
    el("td", { class: "num" }, fmtTime(f.time)),
    el("td", { class: "peer" }, f.peer),
    el("td", {}, f.error),
    el("td", { class: "addr" }, ...(f.addrs || []).map((a) => el("div", {}, a))),
  ));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { class: "empty", colSpan: 4 }, "none")));
  document.getElementById("failure-rows").replaceChildren(...rows);
  document.getElementById("failure-count").textContent = "(last " + fails.length + ")";
}

// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (v <= 0) return 1000;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function renderBandwidth(bw) {
  const box = document.getElementById("bw-chart");
  const note = document.getElementById("bw-note");
  if (!bw || !bw.available) {
    note.textContent = "(the node does not export " + ((bw && bw.metric) || "the byte counters") + " yet)";
    box.replaceChildren();
    box.dataset.samples = "0";
    return;
  }
  const W = 1000, H = 180, L = 70, R = 10, T = 10, B = 22;
  const samples = bw.samples || [];
  const end = samples.length ? new Date(samples[samples.length - 1].t).getTime() : Date.now();
  const top = niceMax(Math.max(0, ...samples.map((s) => Math.max(s.inBps, s.outBps))));
  const x = (t) => L + (W - L - R) * (1 - (end - t) / (CHART_SECONDS * 1000));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": "bytes per second in and out over the last five minutes" });
  for (const f of [0, 0.5, 1]) {
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) }));
    root.append(svg("text", { x: L - 6, y: y(top * f) + 4, "text-anchor": "end" }, fmtRate(top * f)));
  }
  root.append(svg("text", { x: L, y: H - 6 }, "−5 min"));
  root.append(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
  for (const dir of ["in", "out"]) {
    const pts = samples
      .map((s) => [x(new Date(s.t).getTime()), y(dir === "in" ? s.inBps : s.outBps)])
      .filter(([px]) => px >= L)
      .map(([px, py]) => px.toFixed(1) + "," + py.toFixed(1));
    root.append(svg("polyline", { class: dir, points: pts.join(" ") }));
  }
  const last = samples[samples.length - 1] || { inBps: 0, outBps: 0 };
  const legend = svg("g", { class: "legend" });
  legend.append(svg("rect", { class: "in", x: L + 10, y: T + 2, width: 10, height: 10 }));
  legend.append(svg("text", { x: L + 24, y: T + 11 }, "in " + fmtRate(last.inBps)));
  legend.append(svg("rect", { class: "out", x: L + 130, y: T + 2, width: 10, height: 10 }));
  legend.append(svg("text", { x: L + 144, y: T + 11 }, "out " + fmtRate(last.outBps)));
  root.append(legend);
  box.replaceChildren(root);
  box.dataset.samples = String(samples.length);
  note.textContent = "(last 5 minutes, summed over protocols)";
}

function render(st) {
  document.getElementById("peer-id").textContent = st.id;
  document.getElementById("agent").textContent = st.agent;
  renderAddrs("listen-addrs", st.listenAddrs);
  renderAddrs("advertised-addrs", st.advertisedAddrs);
  renderPeers(st.peers || []);
  renderFailures(st.dialFailures || []);
  renderBandwidth(st.bandwidth);
}

function setState(state, text) {
  const s = document.getElementById("state");
  s.dataset.state = state;
  s.textContent = text;
}

async function refresh() {
  try {
    const resp = await fetch("api/status", { cache: "no-store" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const st = await resp.json();
    render(st);
    refreshes++;
    document.body.dataset.refreshes = String(refreshes);
    setState("live", "live · " + fmtTime(st.time));
  } catch (err) {
    setState("offline", "cannot reach the node: " + err.message);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
