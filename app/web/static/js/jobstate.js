// A job's live state: folds server-sent events into the GET /jobs/{id} shape and derives what the page shows.

import { formatDuration } from "./ui.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export function isActive(job) {
  return !TERMINAL.has(job.status);
}

/** Update ``job`` (a JobOut object) in place from one event of GET /jobs/{id}/events. */
export function applyEvent(job, kind, data) {
  const progress = (job.progress ||= {});
  if (kind === "progress") {
    job.status = data.status ?? job.status;
    job.attempts = data.attempts ?? job.attempts;
    for (const name of ["stage", "stage_index", "stage_count", "step", "total", "eta_seconds", "metrics"]) {
      if (name in data) progress[name] = data[name];
    }
  } else if (kind === "stage") {
    Object.assign(progress, { stage: data.stage, stage_index: data.index, stage_count: data.count });
    Object.assign(progress, { step: 0, total: null, eta_seconds: null });
  } else if (kind === "status" || kind === "end") {
    job.status = data.status ?? job.status;
    if (data.error) job.error = data.error;
  } else if (kind === "cancel_requested") {
    job.cancel_requested = true;
  }
  return job;
}

/** Overall progress 0-100: finished stages plus the fraction of the current one. */
export function percent(job) {
  if (job.status === "succeeded") return 100;
  const p = job.progress || {};
  if (!p.stage_count) return 0;
  const within = p.total ? Math.min(1, (p.step || 0) / p.total) : 0;
  const value = (100 * ((p.stage_index || 0) + within)) / p.stage_count;
  return Math.max(0, Math.min(99, Math.floor(value)));
}

export function statusText(job) {
  if (job.cancel_requested && isActive(job)) return `${job.status} (cancelling…)`;
  return job.status;
}

export function stageText(job) {
  const p = job.progress || {};
  if (!p.stage) return { queued: "waiting for a worker", running: "starting…" }[job.status] || "—";
  const of = p.stage_count ? `${(p.stage_index ?? 0) + 1}/${p.stage_count} ` : "";
  const steps = p.total ? ` — step ${p.step ?? 0}/${p.total}` : "";
  return `${of}${p.stage}${steps}`;
}

export function etaText(job) {
  if (!isActive(job)) return "—";
  return formatDuration(job.progress?.eta_seconds);
}

/** Show ``job``'s progress in a <progress> and its text label. */
export function showProgress(bar, label, job) {
  const value = percent(job);
  bar.value = value;
  bar.dataset.status = job.status;
  label.textContent = `${value} %`;
}
