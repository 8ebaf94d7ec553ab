// Datasets: upload with a progress bar (and the DICOM / ROI options), and each dataset's classes, per-split
// counts and patients with a bar chart.

import { getJson, request, upload } from "./api.js";
import { $, decodeText, el, fill, formatBytes, formatDate, notify } from "./ui.js";

const SPLIT_ORDER = ["train", "val", "test"];

function splitsOf(dataset) {
  const names = Object.keys(dataset.counts || {});
  return [...SPLIT_ORDER.filter((s) => names.includes(s)), ...names.filter((s) => !SPLIT_ORDER.includes(s))];
}

/** Per class: counts per split, the total, and the bar's base (training counts when there are any). */
function classRows(dataset) {
  const splits = splitsOf(dataset);
  const rows = dataset.classes.map((name) => {
    const perSplit = splits.map((split) => dataset.counts[split]?.[name] ?? 0);
    const total = perSplit.reduce((a, b) => a + b, 0);
    const train = splits.includes("train") ? dataset.counts.train[name] ?? 0 : total;
    return { name, perSplit, total, train };
  });
  return { splits, rows };
}

/** A footer row of distinct patients per split (splits are carved by patient), when the dataset knows them. */
function patientsRow(dataset, splits) {
  if (!dataset.patients) return null;
  const perSplit = splits.map((s) => dataset.patients[s] ?? 0);
  return el(
    "tfoot",
    {},
    el(
      "tr",
      { class: "patients" },
      el("th", { scope: "row", text: "Patients" }),
      perSplit.map((n) => el("td", { class: "num", text: n })),
      el("td", { class: "num", text: perSplit.reduce((a, b) => a + b, 0) }),
    ),
  );
}

function countsTable(dataset) {
  const { splits, rows } = classRows(dataset);
  return el(
    "div",
    { class: "table-scroll", role: "region", "aria-label": `Class counts of ${dataset.name}`, tabindex: "0" },
    el(
      "table",
      { class: "counts" },
      el("caption", { text: dataset.patients ? "Images per class and split, and patients per split" : "Images per class and split" }),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col", text: "Class" }),
          splits.map((s) => el("th", { scope: "col", class: "num", text: s })),
          el("th", { scope: "col", class: "num", text: "total" }),
        ),
      ),
      el(
        "tbody",
        {},
        rows.map((row) =>
          el(
            "tr",
            {},
            el("th", { scope: "row", text: row.name }),
            row.perSplit.map((n) => el("td", { class: "num", text: n })),
            el("td", { class: "num", text: row.total }),
          ),
        ),
      ),
      patientsRow(dataset, splits),
    ),
  );
}

/** A small bar chart of the training images per class, so the imbalance is visible at a glance. */
function classChart(dataset) {
  const { splits, rows } = classRows(dataset);
  const basis = splits.includes("train") ? "Training images" : "Images";
  const sum = rows.reduce((a, r) => a + r.train, 0) || 1;
  const max = Math.max(1, ...rows.map((r) => r.train));
  return el(
    "figure",
    { class: "class-chart" },
    el("figcaption", { text: `${basis} per class` }),
    el(
      "ul",
      {},
      rows.map((row) => {
        const fillBar = el("span", { class: "bar-fill" });
        fillBar.style.width = `${Math.max(1, Math.round((100 * row.train) / max))}%`;
        return el(
          "li",
          {},
          el("span", { class: "bar-label", text: row.name }),
          el("span", { class: "bar", "aria-hidden": "true" }, fillBar),
          el("span", { class: "bar-value", text: `${row.train} (${Math.round((100 * row.train) / sum)} %)` }),
        );
      }),
    ),
  );
}

function imbalanceNote(dataset) {
  const { rows } = classRows(dataset);
  const counts = rows.map((r) => r.train).filter((n) => n > 0);
  if (counts.length < 2) return null;
  const ratio = Math.max(...counts) / Math.min(...counts);
  return el("p", { class: "muted", text: `Largest / smallest class: ${ratio.toFixed(1)}×` });
}

function datasetCard(dataset, onDeleted) {
  const titleId = `ds-${dataset.id}`;
  const [h, w] = dataset.image_size;
  const error = el("p", { class: "error", role: "alert" });
  const remove = el("button", { type: "button", class: "danger secondary", text: "Delete" });
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete the dataset “${dataset.name}”? Its files are removed.`)) return;
    remove.disabled = true;
    try {
      await request(`datasets/${encodeURIComponent(dataset.id)}`, { method: "DELETE" });
      notify(`Deleted “${dataset.name}”.`);
      onDeleted();
    } catch (err) {
      error.textContent = err.message;
      remove.disabled = false;
    }
  });
  return el(
    "article",
    { class: "card dataset", "aria-labelledby": titleId, "data-dataset-id": dataset.id },
    el("h3", { id: titleId, text: dataset.name }),
    el(
      "p",
      { class: "muted meta" },
      `${dataset.num_images} images · ${dataset.classes.length} classes · ${h}×${w} px · `,
      `${dataset.channels === 1 ? "grey" : `${dataset.channels} channels`} · ${dataset.format} · `,
      `${formatBytes(dataset.size_bytes)} · ${formatDate(dataset.created_at)}`,
    ),
    el("p", { class: "muted meta" }, "id ", el("code", { text: dataset.id })),
    dataset.decode ? el("p", { class: "muted meta decode", text: `Pixels: ${decodeText(dataset.decode)}` }) : null,
    classChart(dataset),
    imbalanceNote(dataset),
    countsTable(dataset),
    el(
      "div",
      { class: "actions" },
      el("a", { class: "button", href: `#/new?dataset=${encodeURIComponent(dataset.id)}` }, "New experiment",
        el("span", { class: "visually-hidden", text: ` with ${dataset.name}` })),
      remove,
    ),
    error,
  );
}

async function refreshList() {
  const page = await getJson("datasets?limit=200");
  const list = $("#dataset-list");
  fill(list, page.data.map((d) => datasetCard(d, refreshList)));
  $("#datasets-empty").hidden = page.data.length > 0;
  return page.data;
}

async function submitUpload(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const file = $("#upload-file").files[0];
  const errorBox = $("#upload-error");
  const bar = $("#upload-progress");
  const label = $("#upload-progress-label");
  errorBox.textContent = "";
  if (!file) {
    errorBox.textContent = "Choose a .zip or .npz file first.";
    $("#upload-file").focus();
    return;
  }
  const data = new FormData();
  data.append("file", file, file.name);
  for (const name of ["name", "class_names", "image_size", "window", "window_width", "window_level", "frames", "roi", "roi_margin"]) {
    const field = form.elements[name];
    const value = field.value.trim();
    if (value && !field.disabled) data.append(name, value);
  }
  const button = $("#upload-submit");
  button.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  label.textContent = "Uploading… 0 %";
  try {
    const dataset = await upload("datasets", data, (loaded, total) => {
      const pct = Math.round((100 * loaded) / total);
      bar.value = pct;
      label.textContent = pct < 100 ? `Uploading… ${pct} %` : "Uploaded 100 %; checking every image…";
    });
    bar.value = 100;
    label.textContent = `Uploaded 100 %: “${dataset.name}”, ${dataset.num_images} images.`;
    notify(`Dataset “${dataset.name}” uploaded: ${dataset.num_images} images in ${dataset.classes.length} classes.`);
    form.reset();
    syncWindow();
    await refreshList();
  } catch (error) {
    bar.hidden = true;
    label.textContent = "Upload refused:";
    errorBox.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

/** Width and level are asked for (and sent) only with a custom window. */
function syncWindow() {
  const custom = $("#upload-window").value === "custom";
  for (const id of ["#upload-window-width", "#upload-window-level"]) {
    $(id).disabled = !custom;
    $(id).required = custom;
  }
}

export const datasetsView = {
  section: "view-datasets",
  init() {
    $("#upload-form").addEventListener("submit", submitUpload);
    $("#upload-window").addEventListener("change", syncWindow);
    syncWindow();
  },
  async enter() {
    await refreshList();
  },
};
