// Small DOM and formatting helpers shared by the views.

/** el("p", {class: "x", text: "hi"}, child...) — attributes, then children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A short message in the page's polite live region (screen readers announce it). */
let noticeTimer = null;
export function notify(message) {
  // The region stays in the page (an empty one takes no space), so screen readers announce each change.
  const box = $("#notice");
  box.textContent = message;
  clearTimeout(noticeTimer);
  if (message) noticeTimer = setTimeout(() => (box.textContent = ""), 8000);
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

/** Replace a container's children. */
export function fill(container, ...children) {
  container.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

/** Names the paper uses for generators (others: as given). */
const GENERATOR_NAMES = {
  dcgan: "DCGAN",
  stylegan: "StyleGAN",
  textual_inversion: "Textual Inversion",
  diffusion: "Diffusion Model",
};

export function generatorName(name) {
  return GENERATOR_NAMES[name] || name;
}

/** A dataset's decode record (window, frames, ROI, images per rule) as one line; "" when it has none. */
export function decodeText(decode) {
  if (!decode) return "";
  const w = decode.window || {};
  const parts = [w.width !== undefined ? `CT window ${w.name} (W ${w.width} / L ${w.level} HU)` : "the file’s own VOI window"];
  const [low, high] = decode.percentiles || [1, 99];
  parts.push(`other modalities: percentiles ${low}–${high}`);
  parts.push(decode.frames === "mip" ? "multi-frame: maximum-intensity projection" : `multi-frame: ${decode.frames} frame`);
  const roi = decode.roi || {};
  parts.push(roi.mode === "crop" ? `ROI crop, margin ${roi.margin}` : "ROIs ignored");
  if (decode.image_size) parts.push(`${decode.image_size} px`);
  return parts.join(" · ");
}
