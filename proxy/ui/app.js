// vetcache's built-in page. Talks to the admin API with the key typed in (kept only in
// this tab's sessionStorage). Everything from the server is inserted as text, never HTML.
"use strict";

const KEY = "vetcache.admin-key";
const $ = (id) => document.getElementById(id);

function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
function ms(x) { return x === null || x === undefined ? "–" : (1000 * x).toFixed(1) + " ms"; }

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY) || "";
  const response = await fetch(path, {
    ...options,
    headers: { authorization: "Bearer " + key, "content-type": "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function optional(path, fallback) {
  try { return await api(path); } catch (error) {
    if (error.status === 409) return fallback; // cache or audits disabled
    throw error;
  }
}

async function load() {
  // The summary first, alone: a wrong key then costs one refused request, not four.
  const summary = await api("/admin/summary");
  const [fp, thresholds, queue] = await Promise.all([
    optional("/admin/fp-rate", null),
    optional("/admin/thresholds", null),
    optional("/admin/review-queue?limit=50", { data: [] }),
  ]);
  $("hit-ratio").textContent = pct(summary.hit_ratio);
  const r = summary.requests;
  $("requests").textContent = `${r.hit} hits, ${r.miss} misses, ${r.fail_open} failed open, ${r.bypass} bypassed, ${r.error} errors (since start)`;
  $("p99").textContent = ms(summary.latency_s.p99);
  $("p50").textContent = `p50 ${ms(summary.latency_s.p50)}; hits p99 ${ms(summary.hit_latency_s.p99)}`;
  $("queue").textContent = summary.audit_queue_depth === null ? "–" : String(summary.audit_queue_depth);
  if (fp) {
    $("fp-rate").textContent = pct(fp.overall.rate);
    $("fp-interval").textContent =
      `95% interval ${pct(fp.overall.lower)}–${pct(fp.overall.upper)}; ` +
      `${fp.overall.false_positives} of ${fp.overall.labelled} labelled hits, last ${Math.round(fp.window_s / 60)} min`;
  }
  renderNamespaces(fp, thresholds);
  renderQueue(queue.data);
  $("main").hidden = false;
}

function renderNamespaces(fp, thresholds) {
  const body = $("namespaces").tBodies[0];
  body.replaceChildren();
  const rates = fp ? fp.namespaces : {};
  const live = thresholds ? thresholds.namespaces : {};
  const names = new Set([...Object.keys(rates), ...Object.keys(live)]);
  for (const name of [...names].sort()) {
    const row = body.insertRow();
    row.dataset.namespace = name;
    const rate = rates[name];
    cell(row, name);
    cell(row, String(name in live ? live[name] : thresholds ? thresholds.default : "–"));
    cell(row, rate ? pct(rate.rate) : "–", "fp");
    cell(row, rate ? `${pct(rate.lower)}–${pct(rate.upper)}` : "–");
    cell(row, rate ? String(rate.labelled) : "0");
  }
}

function renderQueue(rows) {
  const body = $("review").tBodies[0];
  body.replaceChildren();
  for (const { verdict, review } of rows) {
    const row = body.insertRow();
    row.dataset.verdict = verdict.id;
    const job = verdict.job;
    cell(row, verdict.verdict.replace("_", " "), verdict.verdict);
    cell(row, job.new_prompt, "text");
    cell(row, job.cached_prompt, "text");
    cell(row, job.cached_answer, "text");
    cell(row, job.similarity.toFixed(3));
    cell(row, verdict.reason, "text");
    cell(row, verdict.trace_id || "–", "trace"); // the request's trace, in your tracing tool
    const actions = cell(row, "");
    if (review) {
      const span = document.createElement("span");
      span.className = "reviewed";
      span.textContent = review === verdict.verdict ? "confirmed" : `overturned (${review.replace("_", " ")})`;
      actions.appendChild(span);
    }
    const wrong = verdict.verdict === "false_positive";
    addButton(actions, wrong ? "Confirm" : "Wrong answer", verdict.id, false);
    addButton(actions, wrong ? "Overturn" : "Right answer", verdict.id, true);
  }
}

function addButton(parent, text, id, correct) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/admin/verdicts/${encodeURIComponent(id)}/review`, {
        method: "POST",
        body: JSON.stringify({ correct }),
      });
      status(`Reviewed: the cached answer was ${correct ? "right" : "wrong"}.`);
      await load();
    } catch (error) {
      status(error.message, true);
      button.disabled = false;
    }
  });
  parent.appendChild(button);
}

async function open() {
  try {
    await load();
    status("");
  } catch (error) {
    $("main").hidden = true;
    status(error.status === 401 || error.status === 403 ? "That is not the admin key." : error.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value);
    open();
  });
  $("refresh").addEventListener("click", open);
  if (sessionStorage.getItem(KEY)) open();
});
