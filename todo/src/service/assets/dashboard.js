// sluicegate dashboard: polls /api/stats once a second and draws it (uPlot for charts).
"use strict";
(function () {
  const POLL_MS = 1000;
  const OUTCOMES = ["delivered", "rejected", "timed_out", "dropped_oldest", "shed", "coalesced", "expired", "closed", "discarded"];
  const BAD = new Set(["rejected", "timed_out", "dropped_oldest", "shed", "expired"]);
  const cards = new Map();
  let updates = 0;
  let inFlight = false;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmtNum(x) {
    if (x === null || x === undefined) return "–";
    if (Number.isInteger(x)) return String(x);
    return x.toFixed(x < 10 ? 2 : 1);
  }
  function fmtSecs(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(1) + " ms";
    return s.toFixed(2) + " s";
  }

  function mailboxCard(m) {
    const card = el("div", { class: "card", "data-role": m.role });
    const h = el("h3", {}, m.role);
    h.append(el("span", { class: "badge refusing" }, "refusing"), el("span", { class: "badge shedding" }, "shedding"));
    const info = el("div", { class: "info" });
    const chart = el("div", { class: "chart" });
    const table = el("table", {});
    const head = el("tr", {});
    head.append(el("th", {}, "outcome"), el("th", { class: "num" }, "per s"), el("th", { class: "num" }, "total"));
    table.append(head);
    const cells = {};
    for (const o of OUTCOMES) {
      const tr = el("tr", {});
      const rate = el("td", { class: "num", "data-field": o + "-rate" });
      const total = el("td", { class: "num", "data-field": o + "-total" });
      tr.append(el("td", {}, o.replace("_", " ")), rate, total);
      table.append(tr);
      cells[o] = { rate, total };
    }
    const lat = el("div", { class: "info" });
    card.append(h, info, chart, lat, table);
    const plot = new uPlot({
      width: 460, height: 170,
      series: [
        {},
        { label: "depth", stroke: "#2b6cb0", fill: "rgba(43,108,176,0.15)", width: 2 },
        { label: "capacity", stroke: "#c53030", dash: [6, 4], width: 1.5 },
      ],
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [{}, { label: "messages" }],
    }, [[], [], []], chart);
    const c = { card, info, lat, cells, plot };
    cards.set(m.role, c);
    return c;
  }

  function renderMailboxes(list) {
    const box = document.getElementById("mailboxes");
    if (list.length && box.querySelector(".empty")) box.querySelector(".empty").remove();
    for (const m of list) {
      const c = cards.get(m.role) || mailboxCard(m);
      if (!c.card.isConnected) box.append(c.card);
      c.card.classList.toggle("refusing", m.refusing);
      c.card.classList.toggle("shedding", m.shedding);
      c.info.textContent = "";
      c.info.append("policy ", el("b", { "data-field": "policy" }, m.policy || "–"),
        " · capacity ", el("b", { "data-field": "capacity" }, m.capacity === null ? "unbounded" : String(m.capacity)),
        " per mailbox · mailboxes ", el("b", { "data-field": "mailboxes" }, String(m.mailboxes)),
        " · depth ", el("b", { "data-field": "depth" }, String(m.depth)));
      c.lat.textContent = "";
      c.lat.append("sojourn p50 ", el("b", { "data-field": "sojourn-p50" }, fmtSecs(m.sojourn_p50_s)),
        " · p99 ", el("b", { "data-field": "sojourn-p99" }, fmtSecs(m.sojourn_p99_s)),
        " · send wait p99 ", el("b", { "data-field": "send-wait-p99" }, fmtSecs(m.send_wait_p99_s)));
      for (const o of OUTCOMES) {
        const r = m.rates[o] || 0;
        c.cells[o].rate.textContent = fmtNum(r);
        c.cells[o].total.textContent = String(m.totals[o] || 0);
        c.cells[o].rate.classList.toggle("nonzero-bad", BAD.has(o) && r > 0);
      }
      const h = m.depth_history;
      c.plot.setData([h.map(p => p.t), h.map(p => p.depth), h.map(p => p.capacity)]);
    }
  }

  function renderServers(list) {
    const body = document.querySelector("#servers tbody");
    body.textContent = "";
    for (const s of list) {
      const tr = el("tr", { "data-server-role": s.role });
      const calls = Object.entries(s.calls).map(([k, v]) => `${k} ${v} · ${fmtNum(s.call_rates[k] || 0)}/s`).join(", ") || "none";
      const casts = Object.entries(s.cast_errors).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
      const total = Object.values(s.calls).reduce((a, b) => a + b, 0);
      tr.append(el("td", {}, s.role),
        el("td", { class: "num", "data-field": "live" }, s.live === null ? "–" : String(s.live)),
        el("td", { "data-field": "calls", "data-total": String(total) }, calls),
        el("td", { class: "num", "data-field": "call-p99" }, fmtSecs(s.call_p99_s)),
        el("td", { "data-field": "cast-errors" }, casts),
        el("td", { class: "num", "data-field": "restarts" }, String(s.restarts)),
        el("td", { class: "num", "data-field": "escalations" }, String(s.escalations)));
      body.append(tr);
    }
  }

  function renderHttp(list) {
    const body = document.querySelector("#http tbody");
    body.textContent = "";
    for (const r of list) {
      const tr = el("tr", { "data-route": r.method + " " + r.route });
      const st = Object.entries(r.statuses).map(([k, v]) => `${k}: ${v} · ${fmtNum(r.rates[k] || 0)}/s`).join(", ");
      tr.append(el("td", {}, r.method), el("td", {}, r.route), el("td", { "data-field": "statuses" }, st));
      body.append(tr);
    }
  }

  function renderLimit(l) {
    const box = document.getElementById("limit");
    const set = (f, v) => { box.querySelector(`[data-field="${f}"]`).textContent = v; };
    if (!l) { set("limit", "off"); set("in-flight", "–"); set("refused", "–"); return; }
    set("limit", String(l.limit));
    set("in-flight", String(l.in_flight));
    set("refused", `${l.refused} · ${fmtNum(l.refused_per_s)}/s`);
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    const status = document.getElementById("status");
    try {
      const resp = await fetch("/api/stats", { cache: "no-store" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const s = await resp.json();
      renderMailboxes(s.mailboxes);
      renderServers(s.servers);
      renderHttp(s.http);
      renderLimit(s.limit);
      updates += 1;
      document.getElementById("updates").textContent = String(updates);
      document.getElementById("uptime").textContent = s.uptime_s.toFixed(0);
      document.getElementById("rate-window").textContent = s.rate_window_s.toFixed(0);
      document.getElementById("q-window").textContent = s.quantile_window_s.toFixed(0);
      status.textContent = "live";
      status.className = "status ok";
    } catch (e) {
      status.textContent = "cannot read /api/stats: " + e.message;
      status.className = "status error";
    } finally {
      inFlight = false;
    }
  }
  poll();
  setInterval(poll, POLL_MS);
})();
