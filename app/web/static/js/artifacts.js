// A job's artifacts: figures (loaded with the key as blobs), results.json, and download buttons.

import { blobUrl, download, getJson } from "./api.js";
import { el, formatBytes } from "./ui.js";

const FIGURE_GROUPS = [
  { test: /quality|kid|fid|divers|memor/i, title: "Generator quality", quality: true },
  { test: /^samples-/, title: "Sample grids (real, synthetic, GenMix)", describe: (r) => `Sample grid, ${r}`, wide: true },
  { test: /^tsne-/, title: "t-SNE of training features", describe: (r) => `t-SNE, ${r}` },
  { test: /^confusion-/, title: "Confusion matrices", describe: (r) => `Confusion matrix, ${r}` },
  { test: /^curves-/, title: "Learning curves", describe: (r) => `Learning curves, ${r}` },
  { test: /./, title: "Other figures", describe: (r) => r },
];
const PRIMARY_KINDS = ["genmix_export", "synthetic", "results", "config"];
const KIND_NAMES = {
  genmix_export: "GenMix export",
  synthetic: "synthetic set",
  results: "results",
  config: "configuration",
  figure: "figure",
  generator: "generator weights",
  checkpoint: "checkpoint",
  record: "run record",
};

/** Every artifact of a job (all pages). */
export async function listArtifacts(jobId, signal) {
  const all = [];
  for (let offset = 0; ; offset += 500) {
    const page = await getJson(`jobs/${encodeURIComponent(jobId)}/artifacts?limit=500&offset=${offset}`, { signal });
    all.push(...page.data);
    if (all.length >= page.count || !page.data.length) return all;
  }
}

export async function readResults(jobId, artifacts, signal) {
  const item = artifacts.find((a) => a.kind === "results");
  if (!item) return null;
  return getJson(`jobs/${encodeURIComponent(jobId)}/artifacts/${item.id}`, { signal });
}

function baseName(name) {
  return name.split("/").pop().replace(/\.png$/, "");
}

/** Load images a few at a time (each is an authenticated fetch). */
export async function loadImages(jobs, bag, signal, width = 4) {
  const queue = [...jobs];
  const worker = async () => {
    while (queue.length && !signal.aborted) {
      const { img, path, link } = queue.shift();
      try {
        const url = bag.add(await blobUrl(path, signal));
        img.src = url;
        if (link) link.href = url;
      } catch (error) {
        if (error.name === "AbortError") return;
        img.alt = `${img.alt} (could not load: ${error.message})`;
        img.classList.add("broken");
      }
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/** Figure cards grouped as the paper shows them; returns {figures, quality} element lists. */
export function figureGroups(jobId, artifacts, bag, signal) {
  const figures = artifacts.filter((a) => a.kind === "figure").sort((a, b) => a.name.localeCompare(b.name));
  const loads = [];
  const out = { figures: [], quality: [] };
  const placed = new Set();
  for (const group of FIGURE_GROUPS) {
    const members = figures.filter((a) => !placed.has(a.id) && group.test.test(baseName(a.name)));
    if (!members.length) continue;
    const items = members.map((a) => {
      placed.add(a.id);
      const ref = baseName(a.name).replace(/^(samples|tsne|confusion|curves)-/, "");
      const alt = group.describe ? group.describe(ref) : baseName(a.name);
      const img = el("img", { alt, decoding: "async" });
      const link = el("a", { target: "_blank", rel: "noopener", title: `Open ${alt} full size` }, img);
      loads.push({ img, link, path: `jobs/${encodeURIComponent(jobId)}/artifacts/${a.id}` });
      return el("li", { class: group.wide ? "wide" : null }, el("figure", {}, link, el("figcaption", { text: alt })));
    });
    const block = [el("h3", { text: group.title }), el("ul", { class: "figures" }, items)];
    (group.quality ? out.quality : out.figures).push(...block);
  }
  loadImages(loads, bag, signal);
  return out;
}

function downloadButton(jobId, artifact, status) {
  const filename = artifact.name.replace(/\//g, "_");
  const button = el("button", {
    type: "button",
    class: "secondary small",
    text: "Download",
    "aria-label": `Download ${filename}`,
    "data-kind": artifact.kind,
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = `Downloading ${filename}…`;
    try {
      await download(`jobs/${encodeURIComponent(jobId)}/artifacts/${artifact.id}`, filename);
      status.textContent = `Downloaded ${filename}.`;
    } catch (error) {
      status.textContent = `Could not download ${filename}: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function artifactTable(jobId, artifacts, status, label) {
  return el(
    "div",
    { class: "table-scroll", role: "region", "aria-label": label, tabindex: "0" },
    el(
      "table",
      { class: "files" },
      el("thead", {}, el("tr", {}, ["File", "Kind", "Size", ""].map((t, i) =>
        el("th", { scope: "col", class: i === 2 ? "num" : null }, t || el("span", { class: "visually-hidden", text: "Download" }))))),
      el(
        "tbody",
        {},
        artifacts.map((a) =>
          el(
            "tr",
            { "data-kind": a.kind },
            el("th", { scope: "row" }, el("code", { text: a.name })),
            el("td", { text: KIND_NAMES[a.kind] || a.kind }),
            el("td", { class: "num", text: formatBytes(a.size_bytes) }),
            el("td", {}, downloadButton(jobId, a, status)),
          ),
        ),
      ),
    ),
  );
}

/** The GenMix export and the other main files first; figures, weights and checkpoints folded away. */
export function downloads(jobId, artifacts) {
  if (!artifacts.length) return [el("p", { class: "muted", text: "No files yet." })];
  const rank = (a) => (PRIMARY_KINDS.includes(a.kind) ? PRIMARY_KINDS.indexOf(a.kind) : 99);
  const sorted = [...artifacts].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const primary = sorted.filter((a) => PRIMARY_KINDS.includes(a.kind));
  const rest = sorted.filter((a) => !PRIMARY_KINDS.includes(a.kind));
  const status = el("p", { class: "muted", role: "status", "aria-live": "polite" });
  return [
    primary.length ? artifactTable(jobId, primary, status, "Main files") : el("p", { class: "muted", text: "No GenMix export yet." }),
    rest.length
      ? el("details", {}, el("summary", { text: `All other files (${rest.length}): figures, weights, checkpoints, run records` }),
          artifactTable(jobId, rest, status, "Other files"))
      : null,
    status,
  ];
}
