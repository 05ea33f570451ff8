// w2s dashboard: polls the JSON API and redraws tables. Plain DOM, textContent only (no HTML from data).
"use strict";

const TOKEN_KEY = "w2s-operator-token";
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function num(v, digits = 3) {
  return (v === null || v === undefined || typeof v === "boolean") ? "–" : Number(v).toFixed(digits);
}

function when(t) {
  if (typeof t !== "number") return t ? String(t) : "–";
  const d = new Date(t * 1000);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

function setStatus(text, bad) {
  const s = $("#status");
  if (!s) return;
  s.textContent = text;
  s.className = bad ? "bad" : "";
}

async function api(method, path, body) {
  const headers = {};
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) throw new Error((data && data.error) || ("HTTP " + resp.status));
  return data;
}

function poll(fn, ms) {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await fn();
      setStatus("live · updated " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus("update failed: " + e.message, true);
    } finally {
      busy = false;
    }
  };
  setInterval(tick, ms);
}

function fillRows(tbody, items, makeRow, emptyText, cols) {
  const rows = items.map(makeRow);
  if (!rows.length) {
    const tr = el("tr", null, "empty");
    const td = el("td", emptyText);
    td.colSpan = cols;
    tr.appendChild(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) {
    if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
    else tr.appendChild(el("td", c));
  }
  return tr;
}

function stateBadge(state) { return el("span", state, "state state-" + state); }

// ------------------------------------------------------------------------------------------- pages

function leaderboardPage() {
  const table = $("#leaderboard");
  const ds = table.dataset.dataset;
  poll(async () => {
    const data = await api("GET", "/api/leaderboard" + (ds ? "?dataset=" + encodeURIComponent(ds) : ""));
    fillRows(table.tBodies[0], data.rows, (r) => {
      const ci = r.pgr_ci95 ? "[" + num(r.pgr_ci95[0], 2) + ", " + num(r.pgr_ci95[1], 2) + "]" : "–";
      const pp = (r.private_acc !== undefined) ? num(r.public_acc) + " / " + num(r.private_acc) : "–";
      const src = el("span", r.source, "src src-" + String(r.source).replace(/[+ ]/g, "-"));
      const tr = row([r.rank || "–", r.dataset, r.idea, r.n_seeds, num(r.pgr_mean), num(r.pgr_sem), ci,
        num(r.transfer_acc), num(r.weak_acc), num(r.strong_acc), pp, src, r.key],
        r.rank ? "lb-row" : "lb-row unranked");  // "–": shown apart, never ranked
      tr.dataset.idea = r.idea;
      tr.children[12].className = "key";
      return tr;
    }, "No results yet.", 13);
  }, 15000);
}

function parseSeeds(text) {
  // "42,43", "42-44" or "42 43", as every front end reads them (core.control.submit.parse_seeds)
  const seeds = [];
  for (const part of String(text).trim().split(/[\s,]+/)) {
    if (!part) continue;
    const span = part.match(/^(\d+)-(\d+)$/);
    if (span) {
      const lo = Number(span[1]), hi = Number(span[2]);
      if (hi < lo || hi - lo >= 100) throw new Error("seeds: range " + part + " is backwards or too long");
      for (let s = lo; s <= hi; s++) seeds.push(s);
    } else if (/^\d+$/.test(part)) seeds.push(Number(part));
    else throw new Error("seeds: " + part + " is not a whole number (e.g. 42,43 or 42-44)");
  }
  if (!seeds.length) throw new Error("seeds: give at least one seed, e.g. 42,43");
  if (new Set(seeds).size !== seeds.length) throw new Error("seeds: a seed is listed twice");
  return seeds;
}

function jobAction(j) {
  // cancel while it can still run, retry once it failed or was cancelled (operator token needed)
  if (["queued", "starting", "running", "retrying"].includes(j.state)) return actionButton("cancel", j.id);
  if (["failed", "cancelled"].includes(j.state)) return actionButton("retry", j.id);
  return el("span", "");
}

function actionButton(kind, id) {
  const btn = el("button", kind, kind + " op-only");
  btn.dataset.id = id;
  return btn;
}

function queuePage() {
  const tbody = $("#jobs").tBodies[0];
  const logBox = $("#log");
  let selected = location.hash ? location.hash.slice(1) : null;
  let offset = 0;
  let refresh = null;
  const form = $("#launch-form");
  if (form) form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const seeds = parseSeeds(form.elements.seeds.value);
      const ids = [];
      for (const seed of seeds) {
        const job = await api("POST", "/api/jobs", { idea: form.elements.idea.value,
          config: { data_dir: "data/" + form.elements.dataset.value, seed } });
        ids.push(job.id);
      }
      setStatus("launched " + ids.join(", "));
      if (refresh) await refresh();
    } catch (e) { setStatus("launch failed: " + e.message, true); }
  });

  function select(id) {
    selected = id; offset = 0;
    logBox.textContent = "";
    $("#log-job").textContent = id;
    for (const tr of tbody.querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.id === id);
  }
  tbody.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button.cancel, button.retry");
    if (btn) {
      ev.stopPropagation();
      const verb = btn.classList.contains("retry") ? "retry" : "cancel";
      try {
        await api("POST", "/api/jobs/" + encodeURIComponent(btn.dataset.id) + "/" + verb);
        setStatus(verb + " sent for " + btn.dataset.id);
        if (refresh) await refresh();
      } catch (e) { setStatus(verb + " failed: " + e.message, true); }
      return;
    }
    const tr = ev.target.closest("tr.job-row");
    if (tr) select(tr.dataset.id);
  });
  refresh = async () => {
    const data = await api("GET", "/api/jobs");
    fillRows(tbody, data.jobs, (j) => {
      const progress = (j.progress === null || j.progress === undefined) ? "–" : Math.round(j.progress * 100) + "%";
      const cost = typeof j.cost_usd === "number" ? " · $" + j.cost_usd.toFixed(4) + " pods" : "";  // RunPod jobs
      const tr = row([j.id, j.name, stateBadge(j.state), progress + cost, (j.gpus || []).join(",") || "–",
        when(j.created), jobAction(j)], "job-row");
      tr.dataset.id = j.id;
      tr.children[0].className = "mono";
      if (j.id === selected) tr.classList.add("selected");
      return tr;
    }, "No jobs.", 7);
  };
  poll(refresh, 2000);
  poll(async () => {
    if (!selected) return;
    const data = await api("GET", "/api/jobs/" + encodeURIComponent(selected) + "/log?offset=" + offset);
    offset = data.offset;
    if (data.text) {
      const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
      logBox.textContent = (logBox.textContent + data.text).slice(-200000);
      if (atBottom) logBox.scrollTop = logBox.scrollHeight;
    }
  }, 1000);
  if (selected) select(selected);
}

function describeEntry(e) {
  const kind = e.type || e.role || e.kind || "entry";
  let text = e.text || e.content || e.message || "";
  if (typeof text !== "string") text = JSON.stringify(text);
  if (!text && e.name) text = e.name + " " + JSON.stringify(e.input || e.arguments || {});
  if (!text) text = JSON.stringify(e);
  return [kind, text.length > 4000 ? text.slice(0, 4000) + " …" : text];
}

function agentsPage() {
  const tbody = $("#agents").tBodies[0];
  const box = $("#transcript");
  let selected = null;
  let offset = 0;
  tbody.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button.stop");
    if (btn) {
      ev.stopPropagation();
      try {
        await api("POST", "/api/agents/" + encodeURIComponent(btn.dataset.id) + "/stop");
        setStatus("stop sent for " + btn.dataset.id);
      } catch (e) { setStatus("stop failed: " + e.message, true); }
      return;
    }
    const tr = ev.target.closest("tr.agent-row");
    if (!tr) return;
    selected = tr.dataset.id; offset = 0;
    box.replaceChildren();
    $("#transcript-agent").textContent = selected;
    for (const r of tbody.querySelectorAll("tr")) r.classList.toggle("selected", r.dataset.id === selected);
  });
  poll(async () => {
    const data = await api("GET", "/api/agents");
    fillRows(tbody, data.agents, (a) => {
      const cost = (a.cost_usd === null || a.cost_usd === undefined) ? "–" : "$" + num(a.cost_usd, 2);
      const live = ["queued", "running", "waiting (rate limited)"].includes(a.state);
      const tr = row([a.id, stateBadge(a.state), a.direction || "–", cost, a.job_id || "–", a.stop_reason || "",
        live ? actionButton("stop", a.id) : el("span", "")], "agent-row");
      tr.dataset.id = a.id;
      if (a.id === selected) tr.classList.add("selected");
      return tr;
    }, "No agents yet. Launch one with w2s agent launch or a in w2s-tui.", 7);
  }, 3000);
  poll(async () => {
    if (!selected) return;
    const data = await api("GET", "/api/agents/" + encodeURIComponent(selected) + "/transcript?offset=" + offset);
    offset = data.offset;
    for (const entry of data.entries) {
      const [kind, text] = describeEntry(entry);
      const div = el("div", null, "entry entry-" + String(kind).replace(/[^a-z_]/gi, ""));
      div.appendChild(el("b", kind + " "));
      div.appendChild(el("span", text));
      box.appendChild(div);
    }
    if (data.entries.length) box.scrollTop = box.scrollHeight;
  }, 1500);
}

function gpuPage() {
  const box = $("#gpus");
  poll(async () => {
    const data = await api("GET", "/api/gpu");
    if (!data.gpus.length) {
      box.replaceChildren(el("p", data.error || "no NVIDIA GPU", "empty"));
      return;
    }
    box.replaceChildren(...data.gpus.map((g) => {
      const card = el("div", null, "card gpu-card");
      card.appendChild(el("h3", "GPU " + g.index + " · " + g.name));
      const meter = document.createElement("meter");
      meter.min = 0; meter.max = 100; meter.value = g.util_pct || 0;
      card.appendChild(meter);
      card.appendChild(el("p", "utilisation " + num(g.util_pct, 0) + "% · memory " + num(g.mem_used_mb, 0) + " / " +
        num(g.mem_total_mb, 0) + " MiB"));
      card.appendChild(el("p", num(g.temp_c, 0) + " °C · " + num(g.power_w, 0) + " / " + num(g.power_limit_w, 0) +
        " W · job " + (g.holder_job || "–")));
      return card;
    }));
  }, 3000);
}

function findingsPage() {
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button.vote");
    if (!btn) return;
    try {
      const doc = await api("POST", "/api/findings/" + encodeURIComponent(btn.dataset.id) + "/vote",
        { value: Number(btn.dataset.value) });
      btn.parentElement.querySelector(".score").textContent = doc.score;
      setStatus("vote recorded");
    } catch (e) { setStatus("vote failed: " + e.message, true); }
  });
  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form.comment");
    if (!form) return;
    ev.preventDefault();
    const input = form.querySelector("input[name=text]");
    try {
      await api("POST", "/api/findings/" + encodeURIComponent(form.dataset.id) + "/comments", { text: input.value });
      const li = el("li");
      li.appendChild(el("b", "operator "));
      li.appendChild(el("span", input.value));
      form.previousElementSibling.appendChild(li);
      input.value = "";
      setStatus("comment posted");
    } catch (e) { setStatus("comment failed: " + e.message, true); }
  });
}

// ------------------------------------------------------------------------------------------- start

function tokenField() {
  const input = $("#operator-token");
  if (!input) return;
  input.value = localStorage.getItem(TOKEN_KEY) || "";
  document.body.classList.toggle("operator", Boolean(input.value));
  input.addEventListener("change", () => {
    const v = input.value.trim();
    if (v) localStorage.setItem(TOKEN_KEY, v); else localStorage.removeItem(TOKEN_KEY);
    document.body.classList.toggle("operator", Boolean(v));  // the action buttons appear
    setStatus(v ? "operator token saved in this browser" : "operator token removed");
  });
  $("#token-form").addEventListener("submit", (ev) => ev.preventDefault());
}

const PAGES = {
  leaderboard: leaderboardPage, queue: queuePage, agents: agentsPage, gpu: gpuPage,
  findings: findingsPage, finding: findingsPage,
};

document.addEventListener("DOMContentLoaded", () => {
  tokenField();
  const start = PAGES[document.body.dataset.page];
  if (start) start();
});
