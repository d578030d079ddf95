// taskq dashboard. It reads the same JSON routes as any client (their auth and private-data
// rules apply unchanged) and writes every value it shows as text (textContent, never HTML),
// so task names, queue names, errors and arguments cannot inject markup. Actions are the admin
// routes, offered only when /dashboard/session says this request may use them.
"use strict";

(() => {
  const root = document.getElementById("taskq-dashboard");
  const base = root.dataset.base || "";
  const $ = (id) => document.getElementById(id);
  const state = { admin: false, timer: null, failuresOffset: null, failuresTotal: 0 };
  const PAGE = 20;

  // -- helpers

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function call(method, path, query, body) {
    const url = new URL(base + path, window.location.origin);
    for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, String(v));
    const init = { method, credentials: "same-origin", headers: { accept: "application/json" } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok && response.status !== 503) {
      const message = data && typeof data.error === "string" ? data.error : response.statusText;
      throw new HttpError(response.status, message);
    }
    return data;
  }
  const get = (path, query) => call("GET", path, query);
  const post = (path, body) => call("POST", path, undefined, body || {});

  // an element with text children only: strings become text nodes, never markup
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(tbody, rows, columns, empty) {
    tbody.replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns }, empty))]),
    );
  }

  const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString());
  function secs(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 1 : 0) + " ms";
    if (v < 120) return v.toFixed(1) + " s";
    if (v < 7200) return (v / 60).toFixed(1) + " min";
    return (v / 3600).toFixed(1) + " h";
  }
  function bytes(v) {
    if (v === null || v === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return v.toFixed(i ? 1 : 0) + " " + units[i];
  }
  const when = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
  const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %");

  function refused(note, err) {
    if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
      note.textContent = "Sign in to see this: the application's auth admits it only.";
    } else {
      note.textContent = "Unavailable: " + (err && err.message ? err.message : String(err));
    }
  }

  // -- panels

  function overview(summary, health) {
    const items = [
      ["Status", health ? health.status : "–"],
      ["Ready", num(summary.depth)], ["Delayed", num(summary.delayed)],
      ["In flight", num(summary.in_flight)], ["Dead-lettered", num(summary.dead_letter)],
      ["Succeeded", num(summary.succeeded)], ["Failed", num(summary.failed)],
      ["Error rate", pct(summary.error_rate)], ["Workers", num(summary.workers)],
      ["Busy / slots", num(summary.busy) + " / " + num(summary.concurrency)],
      ["Active alerts", num(summary.alerts_active)],
    ];
    $("overview").replaceChildren(
      ...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))),
    );
    if (health) {
      const status = $("status");
      status.className = "status-" + health.status;
      status.textContent = "Health: " + health.status;
    }
  }

  function queues(data) {
    const rows = data.queues.map((q) =>
      el("tr", {},
        el("th", { scope: "row" }, q.name),
        el("td", { class: "num" }, num(q.depth)),
        el("td", { class: "num" }, num(q.delayed)),
        el("td", { class: "num" }, num(q.in_flight)),
        el("td", { class: "num" }, num(q.dead_letter)),
        el("td", { class: "num" }, secs(q.oldest_age_seconds)),
        el("td", { class: "num" }, num(q.workers)),
        el("td", { class: "num" }, secs(q.wait.p50) + " / " + secs(q.wait.p95)),
        el("td", { class: "num" }, secs(q.runtime.p50) + " / " + secs(q.runtime.p95)),
        el("td", { class: "num" }, pct(q.error_rate)),
      ),
    );
    fill(document.querySelector("#queues tbody"), rows, 10, "No queue yet.");
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(history) {
    const points = history.points || [];
    const box = $("chart");
    const width = 1000, height = 200, pad = 24;
    const drawing = svg("svg", { viewBox: `0 0 ${width} ${height}` });
    drawing.append(svg("line", { class: "axis", x1: pad, y1: height - pad, x2: width, y2: height - pad }));
    const top = Math.max(1, ...points.map((p) => p.succeeded + p.failed));
    const span = history.span_seconds * 1000;
    const end = points.length ? points[points.length - 1].at : Date.now();
    const slot = (width - pad) / (history.span_seconds / history.step_seconds);
    for (const p of points) {
      const x = pad + ((p.at - (end - span)) / span) * (width - pad) - slot;
      const ok = ((height - 2 * pad) * p.succeeded) / top;
      const bad = ((height - 2 * pad) * p.failed) / top;
      const bar = (cls, y, h, label) => {
        const r = svg("rect", { class: cls, x: x.toFixed(1), y: y.toFixed(1),
                                width: Math.max(1, slot - 1).toFixed(1), height: h.toFixed(1) });
        r.append(svg("title", {}, label));
        return r;
      };
      const at = new Date(p.at).toLocaleTimeString();
      drawing.append(bar("ok", height - pad - ok, ok, `${at}: ${p.succeeded} succeeded`));
      drawing.append(bar("bad", height - pad - ok - bad, bad, `${at}: ${p.failed} failed`));
    }
    drawing.append(svg("text", { x: 2, y: 12 }, `${top}/min`));
    drawing.append(svg("text", { x: 2, y: height - 6 }, "0"));
    box.replaceChildren(drawing);
    const failed = points.reduce((n, p) => n + p.failed, 0);
    const done = points.reduce((n, p) => n + p.succeeded + p.failed, 0);
    $("chart-note").textContent = points.length
      ? ` — ${done.toLocaleString()} finished in the last hour, failure rate ${done ? pct(failed / done) : "–"}`
      : " — no history yet (a point a minute, written by the workers' alert check)";
  }

  function workers(data, memory) {
    const trend = {};
    for (const w of (memory && memory.workers) || []) trend[w.id] = w;
    const rows = data.workers.map((w) => {
      const m = trend[w.id] || {};
      const t = m.trend || w.memory || {};
      const slope = t.slope_bytes_per_hour;
      return el("tr", {},
        el("th", { scope: "row" }, w.id),
        el("td", {}, w.host),
        el("td", { class: "num" }, w.pid),
        el("td", { class: "num" }, `${num(w.busy)} / ${num(w.concurrency)}`),
        el("td", {}, (w.queues || []).join(", ")),
        el("td", { class: "num" }, bytes(w.rss_bytes)),
        el("td", { class: t.leaking ? "status-critical" : "" },
          slope === null || slope === undefined ? "–" : bytes(slope) + "/h" + (t.leaking ? " (leaking)" : "")),
      );
    });
    fill(document.querySelector("#workers tbody"), rows, 7, "No live worker.");
  }

  function alerts(data, sla) {
    const items = data.active.map((a) =>
      el("li", { class: "status-" + (a.severity || "warning") },
        `${a.rule}: ${a.message || a.subject || ""} (since ${when(a.first_seen)})`),
    );
    $("alerts").replaceChildren(...(items.length ? items : [el("li", {}, "No active alert.")]));
    const rows = sla.rules.map((r) =>
      el("tr", {},
        el("th", { scope: "row" }, r.rule),
        el("td", {}, `${r.threshold} ${r.unit}`),
        el("td", { class: "status-" + r.status }, r.status),
        el("td", {}, r.violations.map((v) => v.subject || JSON.stringify(v)).join(", ") || "–"),
      ),
    );
    fill(document.querySelector("#sla tbody"), rows, 4, "No SLA rule.");
  }

  function autoscaler(data) {
    const items = data.supervisors.map((s) =>
      el("li", {}, `${s.host} ${s.supervisor}: ${s.decision} to ${s.target} ` +
                   `(${s.processes} now, ${s.min}–${s.max}) — ${s.reason} at ${when(s.at)}`),
    );
    $("autoscaler").replaceChildren(
      ...(items.length ? items : [el("li", {}, "No supervisor published a decision.")]),
    );
  }

  function schedules(health) {
    const s = (health.components && health.components.scheduler) || {};
    const entries = Object.entries(s.schedules || {});
    const items = entries.map(([name, next]) =>
      el("li", {}, `${name}: next run ${next ? when(next) : "not known (no scheduler running)"}`),
    );
    if (s.detail) items.push(el("li", { class: "muted" }, s.detail));
    $("schedules").replaceChildren(...(items.length ? items : [el("li", {}, "No schedule.")]));
  }

  function actionButton(label, danger, act) {
    const button = el("button", { type: "button", class: danger ? "danger" : null });
    button.textContent = label;
    button.addEventListener("click", async () => {
      if (danger && button.dataset.armed !== "1") {
        // a second click confirms (no modal dialog: keyboard and screen-reader friendly)
        button.dataset.armed = "1";
        button.textContent = "Confirm " + label.toLowerCase();
        return;
      }
      button.disabled = true;
      try {
        await act();
        $("status").textContent = `${label}: done`;
      } catch (err) {
        $("status").textContent = `${label} failed: ${err.message}`;
      }
      refresh();
    });
    return button;
  }

  function failures(data) {
    state.failuresTotal = data.total;
    const rows = data.items.slice().reverse().map((d) => {
      const actions = state.admin
        ? [
            actionButton("Retry", false, () => post(`/failed/${encodeURIComponent(d.queue)}/retry`, { id: [d.id] })),
            " ",
            actionButton("Purge", true, () => post(`/failed/${encodeURIComponent(d.queue)}/purge`, { id: [d.id] })),
          ]
        : [];
      return el("tr", { "data-id": d.id },
        el("th", { scope: "row" }, d.task || "–"),
        el("td", {}, d.queue),
        el("td", {}, el("a", { href: "#lookup", onclick: () => lookup(d.id, "jobs") }, d.id)),
        el("td", { class: "err" }, d.error ? `${d.error.type}: ${d.error.message}` : "–"),
        el("td", {}, when(d.dead_at)),
        el("td", {}, actions),
      );
    });
    fill(document.querySelector("#failures tbody"), rows, 6, "No dead-lettered task.");
    const first = data.offset + 1, last = data.offset + data.items.length;
    $("failures-page").textContent = data.total
      ? `${first}–${last} of ${data.total.toLocaleString()} (oldest is 1)` : "";
    $("failures-next").disabled = data.offset <= 0;
    $("failures-prev").disabled = last >= data.total;
  }

  function failuresQuery() {
    // newest page first: the route lists oldest first, so start from the end
    if (state.failuresOffset === null) {
      return { limit: PAGE, offset: Math.max(0, state.failuresTotal - PAGE) };
    }
    return { limit: PAGE, offset: state.failuresOffset };
  }

  function details(obj) {
    const dl = el("dl", { class: "cards details" });
    for (const [k, v] of Object.entries(obj)) {
      if (v === null || v === undefined || typeof v === "object") continue;
      const shown = /_at$/.test(k) ? when(v) : v;
      dl.append(el("div", {}, el("dt", {}, k.replace(/_/g, " ")), el("dd", {}, shown)));
    }
    return dl;
  }

  async function lookup(id, kind) {
    const out = $("lookup-result");
    $("lookup-id").value = id;
    $("lookup-kind").value = kind;
    out.replaceChildren(el("p", {}, "Looking up…"));
    try {
      const found = await get(`/${kind}/${encodeURIComponent(id)}`);
      const parts = [el("h3", {}, `${kind === "jobs" ? "Task" : "Workflow"} ${found.id}`),
                     details(found)];
      for (const key of ["args", "kwargs", "progress", "result", "error", "steps"]) {
        if (found[key] !== undefined && found[key] !== null) {
          parts.push(el("h4", {}, key), el("pre", {}, JSON.stringify(found[key], null, 2)));
        }
      }
      if (kind === "jobs" && state.admin && ["queued", "scheduled", "running"].includes(found.status)) {
        const path = `/jobs/${encodeURIComponent(found.id)}`;
        const body = { queue: found.queue };
        parts.push(el("p", {},
          found.status === "running"
            ? actionButton("Abort", true, () => post(path + "/abort", body))
            : actionButton("Cancel", true, () => post(path + "/cancel", body))));
      }
      out.replaceChildren(...parts);
    } catch (err) {
      if (err instanceof HttpError && err.status === 404) {
        out.replaceChildren(el("p", {}, `No ${kind === "jobs" ? "task" : "workflow"} ${id}.`));
      } else {
        out.replaceChildren(el("p", { class: "note" }));
        refused(out.firstChild, err);
      }
    }
  }

  function custom(data) {
    const metrics = (data && data.custom) || [];
    const section = $("custom-section");
    if (!metrics.length) { section.hidden = true; return; }
    section.hidden = false;
    const rows = [];
    for (const m of metrics) {
      const name = m.name;
      for (const s of m.series || []) {
        const labels = Object.entries(s.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
        const value = m.kind === "histogram"
          ? `count ${num(s.count)}, sum ${num(s.sum)}, p50 ${num(s.p50)}, p95 ${num(s.p95)}`
          : num(s.value);
        rows.push(el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, m.kind),
                     el("td", {}, labels || "–"), el("td", {}, value)));
      }
    }
    fill(document.querySelector("#custom tbody"), rows, 4, "No value yet.");
  }

  // -- refresh

  async function refresh() {
    const [summary, health, qs, history, ws, mem, al, sla, auto, failed, all] =
      await Promise.allSettled([
        get("/metrics/summary"), get("/health"), get("/metrics/queues"),
        get("/dashboard/history"), get("/metrics/workers"), get("/metrics/memory"),
        get("/alerts", { limit: 20 }), get("/sla"), get("/metrics/autoscaler"),
        get("/failed", failuresQuery()), get("/metrics"),
      ]);
    const h = health.status === "fulfilled" ? health.value : null;
    if (summary.status === "fulfilled") overview(summary.value, h);
    else refused($("status"), summary.reason);
    if (qs.status === "fulfilled") queues(qs.value);
    if (history.status === "fulfilled") chart(history.value);
    $("workers-note").textContent = "";
    if (ws.status === "fulfilled") workers(ws.value, mem.status === "fulfilled" ? mem.value : null);
    else refused($("workers-note"), ws.reason);
    $("alerts-note").textContent = "";
    if (al.status === "fulfilled" && sla.status === "fulfilled") alerts(al.value, sla.value);
    else refused($("alerts-note"), al.status === "rejected" ? al.reason : sla.reason);
    $("autoscaler-note").textContent = "";
    if (auto.status === "fulfilled") autoscaler(auto.value);
    else refused($("autoscaler-note"), auto.reason);
    if (h) schedules(h);
    $("failures-note").textContent = "";
    if (failed.status === "fulfilled") {
      const before = state.failuresTotal;
      failures(failed.value);
      // the first read learns the total: read the newest page now
      if (state.failuresOffset === null && before !== failed.value.total &&
          failed.value.total > PAGE) {
        return refresh();
      }
    } else {
      refused($("failures-note"), failed.reason);
    }
    if (all.status === "fulfilled") custom(all.value);
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    root.dataset.refreshed = String(Number(root.dataset.refreshed || 0) + 1);
    return undefined;
  }

  function schedule() {
    clearInterval(state.timer);
    if ($("live").checked) state.timer = setInterval(refresh, Number($("every").value));
  }

  async function start() {
    try {
      const session = await get("/dashboard/session");
      state.admin = Boolean(session.admin);
    } catch (_) {
      state.admin = false;
    }
    root.dataset.admin = String(state.admin);
    $("live").addEventListener("change", schedule);
    $("every").addEventListener("change", schedule);
    $("failures-prev").addEventListener("click", () => {
      const current = state.failuresOffset ?? Math.max(0, state.failuresTotal - PAGE);
      state.failuresOffset = Math.min(current + PAGE, Math.max(0, state.failuresTotal - PAGE));
      refresh();
    });
    $("failures-next").addEventListener("click", () => {
      const current = state.failuresOffset ?? Math.max(0, state.failuresTotal - PAGE);
      state.failuresOffset = Math.max(0, current - PAGE);
      refresh();
    });
    $("lookup").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("lookup-id").value.trim();
      if (id) lookup(id, $("lookup-kind").value);
    });
    await refresh();
    schedule();
  }

  start();
})();
