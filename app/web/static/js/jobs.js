// Jobs: a list whose status, stage, progress and ETA follow each active job's server-sent events live.

import { followJobEvents, getJson, request } from "./api.js";
import { applyEvent, etaText, isActive, showProgress, stageText, statusText } from "./jobstate.js";
import { $, el, fill, formatDate, notify, shortId } from "./ui.js";

// Browsers allow ~6 connections per host over HTTP/1.1; keep most of them for ordinary requests.
const MAX_STREAMS = 3;
const POLL_MS = 10_000;

let visit = null; // {controller, rows: Map(id -> row), timer}

/** Ask the API to cancel ``job``; returns the updated job (or throws ApiError with the API's reason). */
export async function cancelJob(job) {
  const response = await request(`jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
  return response.json();
}

function jobRow(job, datasetName) {
  const link = el("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, el("code", { text: shortId(job.id) }));
  const arms = job.spec?.arms?.length ?? 0;
  const bar = el("progress", { max: "100", value: "0", "aria-label": `Progress of job ${shortId(job.id)}` });
  const row = {
    job,
    tr: null,
    status: el("span", { class: "badge" }),
    stage: el("span"),
    bar,
    pct: el("span", { class: "pct" }),
    eta: el("span"),
    cancel: el("button", {
      type: "button",
      class: "danger secondary small",
      text: "Cancel",
      "aria-label": `Cancel job ${shortId(job.id)}`,
    }),
  };
  row.tr = el(
    "tr",
    { "data-job-id": job.id },
    el("th", { scope: "row" }, link, el("div", { class: "muted small", text: `${datasetName || "dataset deleted"} · ${arms} arms` })),
    el("td", {}, row.status),
    el("td", { class: "stage" }, row.stage),
    el("td", { class: "progress-cell" }, bar, row.pct),
    el("td", {}, row.eta),
    el("td", { class: "small", text: formatDate(job.created_at) }),
    el("td", {}, row.cancel),
  );
  row.cancel.addEventListener("click", async () => {
    row.cancel.disabled = true;
    try {
      Object.assign(row.job, await cancelJob(row.job));
      notify(`Cancel requested for job ${shortId(job.id)}.`);
    } catch (error) {
      notify(`Could not cancel job ${shortId(job.id)}: ${error.message}`);
      row.cancel.disabled = false;
    }
    render(row);
  });
  render(row);
  return row;
}

function render(row) {
  const { job } = row;
  row.status.textContent = statusText(job);
  row.status.dataset.status = job.status;
  row.stage.textContent = stageText(job);
  showProgress(row.bar, row.pct, job);
  row.eta.textContent = etaText(job);
  row.cancel.hidden = !isActive(job) || job.cancel_requested;
}

async function follow(row, signal) {
  try {
    await followJobEvents(row.job.id, (kind, data) => {
      applyEvent(row.job, kind, data);
      render(row);
    }, signal);
    if (signal.aborted) return;
    Object.assign(row.job, await getJson(`jobs/${encodeURIComponent(row.job.id)}`, { signal }));
    render(row);
  } catch (error) {
    if (error.name !== "AbortError") row.stage.textContent = `live updates stopped: ${error.message}`;
  }
}

async function load() {
  stop();
  const controller = new AbortController();
  visit = { controller, rows: new Map(), timer: null };
  const status = $("#jobs-filter").value;
  const [page, datasets] = await Promise.all([
    getJson(`jobs?limit=100${status ? `&status=${encodeURIComponent(status)}` : ""}`, { signal: controller.signal }),
    getJson("datasets?limit=500", { signal: controller.signal }),
  ]);
  if (controller.signal.aborted) return;
  const names = new Map(datasets.data.map((d) => [d.id, d.name]));
  const rows = page.data.map((job) => jobRow(job, names.get(job.dataset_id)));
  fill($("#jobs-table tbody"), rows.map((r) => r.tr));
  $("#jobs-empty").hidden = rows.length > 0;
  const active = rows.filter((r) => isActive(r.job));
  active.slice(0, MAX_STREAMS).forEach((row) => follow(row, controller.signal));
  if (active.length > MAX_STREAMS) {
    // Too many to stream at once: refresh the whole list now and then instead.
    visit.timer = setTimeout(() => load().catch(() => {}), POLL_MS);
  }
}

function stop() {
  if (!visit) return;
  visit.controller.abort();
  clearTimeout(visit.timer);
  visit = null;
}

export const jobsView = {
  section: "view-jobs",
  init() {
    const reload = () =>
      load().catch((error) => error.name === "AbortError" || notify(`Could not load the jobs: ${error.message}`));
    $("#jobs-filter").addEventListener("change", reload);
    $("#jobs-refresh").addEventListener("click", reload);
  },
  enter: load,
  leave: stop,
};
