// One job: live status and progress, the results table, generator quality, figures, samples and downloads.

import { UrlBag, followJobEvents, getJson } from "./api.js";
import { downloads, figureGroups, listArtifacts, readResults } from "./artifacts.js";
import { applyEvent, etaText, isActive, showProgress, stageText, statusText } from "./jobstate.js";
import { cancelJob } from "./jobs.js";
import { qualityTables, referencesLine, resultsTable, runsTable, verdictBox } from "./results.js";
import { initSamples, refreshSamples, startSamples, stopSamples } from "./samples.js";
import { $, el, fill, formatDate, formatDuration, notify, shortId } from "./ui.js";

let visit = null; // {job, controller, bag, figureBag}

function renderHead(job) {
  $("#job-status").textContent = statusText(job);
  $("#job-status").dataset.status = job.status;
  $("#job-stage").textContent = stageText(job);
  showProgress($("#job-progress"), $("#job-progress-text"), job);
  const parts = [
    `attempt ${job.attempts} of ${job.max_attempts}`,
    `queue ${job.queue}`,
    `created ${formatDate(job.created_at)}`,
    job.started_at ? `started ${formatDate(job.started_at)}` : null,
    job.finished_at ? `finished ${formatDate(job.finished_at)}` : null,
    isActive(job) ? `ETA ${etaText(job)}` : null,
  ];
  $("#job-detail").textContent = parts.filter(Boolean).join(" · ");
  const error = $("#job-error");
  error.hidden = !job.error;
  error.textContent = job.error || "";
  $("#job-cancel").hidden = !isActive(job) || job.cancel_requested;
  const extend = $("#job-extend");
  extend.hidden = isActive(job);
  extend.href = `#/new?extends=${encodeURIComponent(job.id)}`;
}

/** {"epochs": 2, "lr": 0.01} -> "epochs 2, lr 0.01" (nested objects: "dcgan: iterations 40"). */
function settingsText(settings) {
  return Object.entries(settings)
    .map(([k, v]) => (v && typeof v === "object" ? `${k}: ${settingsText(v)}` : `${k} ${v}`))
    .join(", ");
}

function renderSpec(job, datasetName) {
  const s = job.spec || {};
  const classifier = typeof s.classifier === "object" && s.classifier ? s.classifier : { name: s.classifier };
  const { name, ...overrides } = classifier;
  const items = [
    ["Dataset", datasetName || job.dataset_id || "deleted"],
    ["Generators", (s.generators || []).join(", ") || "—"],
    ["Arms", (s.arms || []).join(", ")],
    ["Synthetic ratio", s.synthetic_ratio],
    ["α", s.alpha],
    ["Classifier", Object.keys(overrides).length ? `${name} (${settingsText(overrides)})` : name],
    ["Profile", s.profile],
    ["Seeds", (s.seeds || []).join(", ")],
  ];
  if (s.extends) items.push(["Extends", `job ${shortId(s.extends)} (its finished runs reused)`]);
  if (job.design_note) items.push(["Verdict", job.design_note]);
  if (s.generator && Object.keys(s.generator).length) items.push(["Generator settings", settingsText(s.generator)]);
  fill($("#job-spec"), items.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: String(v ?? "—") }))));
}

function renderResults(job) {
  const box = $("#results");
  if (!job.results?.runs?.length) {
    const text = isActive(job)
      ? "Results appear here as each arm and seed finishes."
      : "This job finished without results.";
    fill(box, el("p", { class: "muted", text }));
    return;
  }
  fill(box, verdictBox(job), referencesLine(job), resultsTable(job), runsTable(job));
}

/** The job's units (generators, filters, classifier runs, the final assembly): status, host, progress. */
function renderUnits(job) {
  const units = job.units || [];
  const summary = job.units_summary;
  const counts = summary ? Object.entries(summary.counts).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`) : [];
  const hosts = summary?.hosts?.length ? `running on ${summary.hosts.join(", ")}` : null;
  const eta = summary?.eta_seconds != null && isActive(job) ? `job ETA ${formatDuration(summary.eta_seconds)}` : null;
  $("#units-summary").textContent = [counts.join(", "), hosts, eta].filter(Boolean).join(" · ");
  if (!units.length) {
    fill($("#units"), el("p", { class: "muted", text: "Units appear here once a worker has planned the job." }));
    return;
  }
  const head = el("tr", {}, ...["Unit", "Status", "Host", "Progress", "Attempts"].map((t) => el("th", { scope: "col", text: t })));
  const rows = units.map((u) => {
    const progress = u.total ? `${u.step ?? 0} / ${u.total}${u.resumed_step ? ` (resumed at ${u.resumed_step})` : ""}` : "";
    // finished without ever being started here: its output was on disk (a job extended, or resumed after a loss)
    const reused = u.status === "succeeded" && !u.attempts && !u.started_at;
    const status = u.error ? `${u.status}: ${u.error}` : reused ? "succeeded (reused)" : u.status;
    return el("tr", { "data-status": u.status },
      el("td", { text: u.stage }), el("td", { text: status }),
      el("td", { text: u.host || "—" }), el("td", { text: progress }), el("td", { text: String(u.attempts) }));
  });
  fill($("#units"), el("div", { class: "table-scroll", role: "region", "aria-label": "Units of the job", tabindex: "0" },
    el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))));
}

async function renderArtifacts() {
  const { job, controller } = visit;
  const signal = controller.signal;
  const artifacts = await listArtifacts(job.id, signal);
  if (signal.aborted) return;
  visit.figureBag.revokeAll();
  const groups = figureGroups(job.id, artifacts, visit.figureBag, signal);
  fill($("#figures"), groups.figures.length ? groups.figures : el("p", { class: "muted", text: isActive(job) ? "Figures appear as the job draws them." : "No figures." }));
  fill($("#downloads"), downloads(job.id, artifacts));
  const results = await readResults(job.id, artifacts, signal).catch(() => null);
  if (signal.aborted) return;
  const tables = qualityTables(results);
  const none = results
    ? "This job trained no generator."
    : "Generator quality appears when the job finishes.";
  fill($("#quality"), tables.length || groups.quality.length ? [...tables, ...groups.quality] : el("p", { class: "muted", text: none }));
}

async function refresh({ artifacts = false } = {}) {
  const { job, controller } = visit;
  Object.assign(job, await getJson(`jobs/${encodeURIComponent(job.id)}`, { signal: controller.signal }));
  renderHead(job);
  renderUnits(job);
  renderResults(job);
  if (artifacts) await renderArtifacts();
}

async function follow() {
  const { job, controller } = visit;
  const signal = controller.signal;
  try {
    await followJobEvents(job.id, (kind, data) => {
      applyEvent(job, kind, data);
      renderHead(job);
      if (kind === "run_finished") refresh({ artifacts: true }).catch(() => {});
      else if (kind === "unit") refresh().catch(() => {});
      if (kind === "stage") refreshSamples();
    }, signal);
    if (signal.aborted) return;
    await refresh({ artifacts: true });
    refreshSamples();
    notify(`Job ${shortId(job.id)} ${job.status}.`);
  } catch (error) {
    if (error.name !== "AbortError") $("#job-stage").textContent = `live updates stopped: ${error.message}`;
  }
}

async function cancel() {
  const button = $("#job-cancel");
  button.disabled = true;
  try {
    Object.assign(visit.job, await cancelJob(visit.job));
    notify(`Cancel requested for job ${shortId(visit.job.id)}.`);
    renderHead(visit.job);
  } catch (error) {
    notify(`Could not cancel: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function leave() {
  if (!visit) return;
  visit.controller.abort();
  visit.bag.revokeAll();
  visit.figureBag.revokeAll();
  stopSamples();
  visit = null;
}

export const jobView = {
  section: "view-job",
  init() {
    $("#job-cancel").addEventListener("click", cancel);
    initSamples();
  },
  async enter({ id }) {
    leave();
    const controller = new AbortController();
    const signal = controller.signal;
    visit = { job: null, controller, bag: new UrlBag(), figureBag: new UrlBag() };
    for (const box of ["#units", "#results", "#quality", "#figures", "#downloads", "#job-spec", "#samples-grid"]) fill($(box));
    $("#job-title").textContent = `Job ${shortId(id)}`;
    const job = await getJson(`jobs/${encodeURIComponent(id)}`, { signal });
    visit.job = job;
    renderHead(job);
    renderUnits(job);
    renderResults(job);
    const dataset = job.dataset_id
      ? await getJson(`datasets/${encodeURIComponent(job.dataset_id)}`, { signal }).catch(() => null)
      : null;
    if (signal.aborted) return;
    renderSpec(job, dataset?.name);
    startSamples(job, visit.bag, signal);
    if (isActive(job)) follow();
    await renderArtifacts();
  },
  leave,
};
