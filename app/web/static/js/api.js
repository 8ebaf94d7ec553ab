// Talking to the GenMix API: the key, JSON requests, uploads with progress, server-sent events with the
// Authorization header (EventSource cannot send one), and authenticated images and downloads as blobs.

const KEY_NAME = "genmix.apiKey";
// The page lives at <api>/ui/, so the API is one folder up (works behind a path prefix too).
const BASE = new URL("../", document.baseURI);

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_NAME),
  set: (value) => sessionStorage.setItem(KEY_NAME, value),
  clear: () => sessionStorage.removeItem(KEY_NAME),
};

export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), BASE).toString();
}

/** The last part of a validation error's location that names a request field (skipping "body"). */
export function fieldOf(loc) {
  if (!Array.isArray(loc)) return null;
  const parts = loc[0] === "body" ? loc.slice(1) : loc;
  return parts.length ? String(parts[0]) : null;
}

/** An API error worded as the API words it: FastAPI's ``detail`` string, or its 422 list. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail, status));
    this.status = status;
    this.detail = detail;
  }

  /** 422 items as {field, message}; other errors as one item without a field. */
  get problems() {
    if (Array.isArray(this.detail)) {
      return this.detail.map((item) => ({
        field: fieldOf(item.loc),
        path: (item.loc || []).slice(1).join("."),
        message: item.msg,
      }));
    }
    return [{ field: null, path: "", message: this.message }];
  }
}

export function describeDetail(detail, status) {
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        const path = (item.loc || []).slice(1).join(".");
        return path ? `${path}: ${item.msg}` : item.msg;
      })
      .join("; ");
  }
  return status ? `The service answered HTTP ${status}.` : "The service could not be reached.";
}

function parseErrorBody(status, text) {
  try {
    const body = JSON.parse(text);
    return new ApiError(status, body && "detail" in body ? body.detail : null);
  } catch {
    return new ApiError(status, null);
  }
}

function authHeaders(extra = {}, key = apiKey.get()) {
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

function signalUnauthorized(error) {
  window.dispatchEvent(new CustomEvent("genmix:unauthorized", { detail: error }));
}

/** fetch() with the key; throws ApiError for any non-2xx answer (and announces a 401 to the page). */
export async function request(path, { method = "GET", json, headers = {}, signal, key } = {}) {
  const init = { method, headers: authHeaders(headers, key ?? apiKey.get()), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, null);
  }
  if (!response.ok) {
    const error = parseErrorBody(response.status, await response.text());
    if (response.status === 401 && key === undefined) signalUnauthorized(error);
    throw error;
  }
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

/** POST a multipart form with XMLHttpRequest, which (unlike fetch) reports upload progress. */
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl(path));
    const key = apiKey.get();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.upload.addEventListener("load", () => onProgress(1, 1));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText));
        return;
      }
      const error = parseErrorBody(xhr.status, xhr.responseText);
      if (xhr.status === 401) signalUnauthorized(error);
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, null)));
    xhr.send(formData);
  });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** One server-sent event block -> {kind, data, id} (null for comments and retry hints). */
function parseBlock(block) {
  let kind = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (!data.length) return null;
  try {
    return { kind, id, data: JSON.parse(data.join("\n")) };
  } catch {
    return { kind, id, data: data.join("\n") };
  }
}

/**
 * Follow a job's event stream until it sends ``end`` or ``signal`` aborts; reconnects with
 * Last-Event-ID after a dropped connection. ``onEvent(kind, data)`` is called for every event.
 */
export async function followJobEvents(jobId, onEvent, signal) {
  let lastId = null;
  while (!signal.aborted) {
    let ended = false;
    try {
      const headers = lastId ? { "Last-Event-ID": lastId } : {};
      const response = await request(`jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = (buffer + value).replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = parseBlock(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!event) continue;
          if (event.id) lastId = event.id;
          if (event.kind === "end") ended = true;
          onEvent(event.kind, event.data);
        }
      }
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
    }
    if (ended) return;
    await sleep(2000, signal);
  }
}

/** An object URL for an authenticated file (images need the key, so <img src> alone cannot fetch them). */
export async function blobUrl(path, signal) {
  const response = await request(path, { signal });
  return URL.createObjectURL(await response.blob());
}

/** Download an authenticated file under ``filename``. */
export async function download(path, filename) {
  const url = await blobUrl(path);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Object URLs made for one view, revoked together when the view is left. */
export class UrlBag {
  constructor() {
    this.urls = [];
  }

  add(url) {
    this.urls.push(url);
    return url;
  }

  revokeAll() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

/** The OpenAPI document (no key needed), read once: the form's choices come from the API's own schema. */
let openapi = null;
export async function openApi() {
  if (!openapi) {
    openapi = fetch(apiUrl("openapi.json"))
      .then((response) => (response.ok ? response.json() : null))
      .catch(() => null);
  }
  return openapi;
}
