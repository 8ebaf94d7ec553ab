// The page's entry point: the API key, and a hash router that shows one view at a time.

import { ApiError, apiKey, request } from "./api.js";
import { datasetsView } from "./datasets.js";
import { experimentView } from "./experiment.js";
import { jobView } from "./job.js";
import { jobsView } from "./jobs.js";
import { $, notify } from "./ui.js";

const VIEWS = { datasets: datasetsView, new: experimentView, jobs: jobsView, job: jobView };
let current = null;

/** "#/jobs/abc?x=1" -> {name: "job", id: "abc", query: URLSearchParams}. */
function parseRoute() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const query = new URLSearchParams(search);
  if (parts[0] === "jobs" && parts[1]) return { name: "job", id: decodeURIComponent(parts[1]), query };
  return { name: VIEWS[parts[0]] ? parts[0] : "datasets", id: null, query };
}

function showSection(id) {
  for (const section of document.querySelectorAll("main > .view")) section.hidden = section.id !== id;
}

function leaveCurrent() {
  current?.leave?.();
  current = null;
}

async function route({ focus = true } = {}) {
  leaveCurrent();
  const key = apiKey.get();
  $("#key-state").textContent = key ? "API key set" : "No API key";
  $("#key-change").hidden = !key;
  if (!key) {
    showKeyForm("");
    return;
  }
  const where = parseRoute();
  for (const link of document.querySelectorAll("[data-nav]")) {
    const active = link.dataset.nav === where.name || (where.name === "job" && link.dataset.nav === "jobs");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = VIEWS[where.name];
  showSection(view.section);
  current = view;
  if (focus) document.querySelector(`#${view.section} h1`)?.focus();
  try {
    await view.enter(where);
  } catch (error) {
    if (error.name === "AbortError" || (error instanceof ApiError && error.status === 401)) return;
    notify(`Could not load this page: ${error.message}`);
  }
}

function showKeyForm(message) {
  leaveCurrent();
  showSection("view-key");
  for (const link of document.querySelectorAll("[data-nav]")) link.removeAttribute("aria-current");
  $("#key-forget").hidden = !apiKey.get();
  $("#key-error").textContent = message;
  $("#key-input").setAttribute("aria-invalid", message ? "true" : "false");
  $("#key-input").value = "";
  $("#key-input").focus();
}

async function submitKey(event) {
  event.preventDefault();
  const key = $("#key-input").value.trim();
  const button = event.submitter || $("#key-form button[type=submit]");
  if (!key) {
    $("#key-error").textContent = "Enter the key you were given.";
    $("#key-input").setAttribute("aria-invalid", "true");
    return;
  }
  button.disabled = true;
  $("#key-error").textContent = "";
  try {
    await request("datasets?limit=1", { key });
    apiKey.set(key);
    notify("API key accepted.");
    if (!location.hash || location.hash === "#/") location.hash = "#/datasets";
    else await route();
  } catch (error) {
    const wrong = error instanceof ApiError && error.status === 401;
    $("#key-error").textContent = wrong
      ? `That key was not accepted: ${error.message}.`
      : `Could not check the key: ${error.message}`;
    $("#key-input").setAttribute("aria-invalid", "true");
  } finally {
    button.disabled = false;
  }
}

function init() {
  $("#key-form").addEventListener("submit", submitKey);
  $("#key-change").addEventListener("click", () => showKeyForm(""));
  $("#key-forget").addEventListener("click", () => {
    apiKey.clear();
    notify("API key forgotten.");
    route();
  });
  window.addEventListener("genmix:unauthorized", (event) => {
    apiKey.clear();
    $("#key-state").textContent = "No API key";
    showKeyForm(`The service no longer accepts the key: ${event.detail.message}. Enter a valid key.`);
  });
  window.addEventListener("hashchange", () => route());
  for (const view of Object.values(VIEWS)) view.init?.();
  route({ focus: false });
}

init();
