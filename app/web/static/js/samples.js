// The sample browser: tabs real / synthetic / GenMix, a class filter, paging, and for each GenMix image its
// λ and both parents. Images need the key, so each is fetched as a blob.

import { getJson } from "./api.js";
import { loadImages } from "./artifacts.js";
import { $, decodeText, el, fill, generatorName } from "./ui.js";

const PAGE_SIZE = 12;
let state = null; // {job, kind, label, offset, count, bag, signal, classNames}

function className(index) {
  return state.classNames[index] ?? `class ${index}`;
}

function image(id, alt, loads, size = "") {
  const img = el("img", { alt, class: `sample-img ${size}`.trim(), width: "96", height: "96" });
  loads.push({ img, path: `samples/${id}` });
  return img;
}

function softLabelText(soft) {
  return soft.map((p, k) => `${className(k)} ${p.toFixed(2)}`).join(" · ");
}

function card(sample, loads) {
  const name = sample.class_name || className(sample.label);
  if (sample.kind !== "genmix") {
    const from = sample.kind === "synthetic" && sample.generator
      ? ` · ${generatorName(sample.generator)}${sample.seed !== null ? `, seed ${sample.seed}` : ""}` : "";
    return el(
      "li",
      { class: "sample", "data-sample-id": sample.id },
      el("figure", {}, image(sample.id, `${sample.kind} image of class ${name}`, loads),
        el("figcaption", {}, el("span", { class: "cls", text: name }), el("span", { class: "muted small", text: `#${sample.id}${from}` }))),
    );
  }
  const lam = sample.lam ?? 0;
  const partner = sample.partner_pool === "synthetic" ? "synthetic" : "real";
  const parents = el(
    "div",
    { class: "parents" },
    sample.parent_real_id !== null
      ? el("figure", {}, image(sample.parent_real_id, `real parent of GenMix sample ${sample.id}`, loads, "small"),
          el("figcaption", { text: `real × ${(1 - lam).toFixed(2)}` }))
      : null,
    sample.parent_partner_id !== null
      ? el("figure", {}, image(sample.parent_partner_id, `${partner} partner of GenMix sample ${sample.id}`, loads, "small"),
          el("figcaption", { text: `${partner} × ${lam.toFixed(2)}` }))
      : null,
  );
  return el(
    "li",
    { class: "sample genmix", "data-sample-id": sample.id },
    el(
      "figure",
      {},
      image(sample.id, `GenMix image, mostly ${name}, λ ${lam.toFixed(2)}`, loads),
      el(
        "figcaption",
        {},
        el("span", { class: "cls", text: name }),
        el("span", { class: "lam", text: `λ = ${lam.toFixed(3)}` }),
        sample.soft_label ? el("span", { class: "muted small", text: softLabelText(sample.soft_label) }) : null,
      ),
    ),
    el("p", { class: "visually-hidden", text: `Mixed from a real image (weight ${(1 - lam).toFixed(2)}) and a ${partner} image (weight λ).` }),
    parents,
  );
}

async function loadPage() {
  const { job, kind, label, offset, signal } = state;
  const params = new URLSearchParams({ job_id: job.id, kind, limit: String(PAGE_SIZE), offset: String(offset) });
  if (label !== "") params.set("label", label);
  const page = await getJson(`samples?${params}`, { signal });
  if (signal.aborted) return;
  state.count = page.count;
  const loads = [];
  fill($("#samples-grid"), page.data.map((s) => card(s, loads)));
  $("#samples-empty").hidden = page.data.length > 0;
  const first = page.count ? offset + 1 : 0;
  $("#samples-range").textContent = `${first}–${offset + page.data.length} of ${page.count}`;
  $("#samples-prev").disabled = offset === 0;
  $("#samples-next").disabled = offset + PAGE_SIZE >= page.count;
  await loadImages(loads, state.bag, signal);
}

function selectTab(tab, focus = false) {
  for (const other of document.querySelectorAll('#view-job [role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
  }
  $("#samples-panel").setAttribute("aria-labelledby", tab.id);
  if (focus) tab.focus();
  if (state) {
    state.kind = tab.dataset.kind;
    state.offset = 0;
    reload();
  }
}

function reload() {
  loadPage().catch((error) => {
    if (error.name !== "AbortError") $("#samples-range").textContent = `Could not load samples: ${error.message}`;
  });
}

export function initSamples() {
  const tabs = [...document.querySelectorAll('#view-job [role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length], true);
    });
  }
  $("#samples-class").addEventListener("change", (event) => {
    if (!state) return;
    state.label = event.target.value;
    state.offset = 0;
    reload();
  });
  $("#samples-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    reload();
  });
  $("#samples-next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    reload();
  });
}

/** Show the browser for ``job`` (first tab, all classes). */
export function startSamples(job, bag, signal) {
  const classNames = job.spec?.class_names || [];
  state = { job, kind: "real", label: "", offset: 0, count: 0, bag, signal, classNames };
  // Real images are shown as the upload stored them: windowed (DICOM) and cropped (ROIs) by the dataset's rules.
  const pixels = decodeText(job.spec?.dataset_decode);
  $("#samples-pixels").textContent = pixels ? `Real images as windowed at upload: ${pixels}.` : "";
  $("#samples-pixels").hidden = !pixels;
  fill(
    $("#samples-class"),
    el("option", { value: "", text: "all classes" }),
    classNames.map((name, k) => el("option", { value: String(k), text: name })),
  );
  selectTab($("#tab-real"));
}

/** Reload the current page (new samples appear as a job runs). */
export function refreshSamples() {
  if (state) reload();
}

export function stopSamples() {
  state = null;
}
