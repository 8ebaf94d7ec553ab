// New experiment: a form built from the API's own schema, sent as-is so the API's validation messages
// (422 ``detail`` items) appear next to the fields they name.

import { ApiError, getJson, openApi, request } from "./api.js";
import { $, el, fill, notify, shortId } from "./ui.js";

/** Numbers the form sends as numbers (the API says what is wrong with anything else). */
const NUMBER_FIELDS = [
  "synthetic_ratio", "alpha", "beta", "mixup_alpha", "mix_prob", "samples_per_class",
  "classifier_seeds_per_generator", "filter_tau",
];
/** Number fields that may hold a comma-separated list. */
const LIST_FIELDS = ["synthetic_ratio", "alpha", "mix_prob"];
/** Lists of names and defaults both come from the API's schema of JobCreate: nothing is repeated here. */
const CHOICE_FIELDS = ["generators", "arms", "classifier", "profile", "partner_pool", "device"];

function enumOf(schema) {
  if (!schema) return null;
  if (schema.enum) return schema.enum;
  if ("const" in schema) return [schema.const];
  if (schema.items) return enumOf(schema.items);
  for (const option of schema.anyOf || []) {
    const values = enumOf(option);
    if (values) return values;
  }
  return null;
}

/** Choices and defaults of every field of the experiment spec, read from /openapi.json. */
async function specSchema() {
  const doc = await openApi();
  const props = doc?.components?.schemas?.JobCreate?.properties;
  if (!props) throw new Error("the API's schema (/openapi.json) could not be read; reload the page");
  const choices = {};
  for (const name of CHOICE_FIELDS) choices[name] = enumOf(props[name]) || [];
  const defaults = {};
  for (const [name, prop] of Object.entries(props)) if ("default" in prop) defaults[name] = prop.default;
  return { choices, defaults };
}

function fillSelect(select, values, selected) {
  fill(select, values.map((v) => el("option", { value: v, text: v, selected: v === selected })));
}

function fillChecks(container, name, values, checked) {
  fill(
    container,
    values.map((value) => {
      const id = `f-${name}-${value}`.replace(/[^\w-]/g, "_");
      return el(
        "div",
        { class: "check" },
        el("input", { type: "checkbox", id, name, value, checked: checked.includes(value) }),
        el("label", { for: id, text: value }),
      );
    }),
  );
}

let built = false;
let defaults = {};
/** The ended job this form extends (``extends``), or null for a new study. */
let extending = null;

/** Put a spec's values (the schema's defaults, or a job's spec to extend) into the form's controls. */
function fillValues(values) {
  for (const name of ["generators", "arms", "partner_pool"]) {
    const chosen = [values[name]].flat();
    for (const box of document.querySelectorAll(`#job-form input[name=${name}]`)) box.checked = chosen.includes(box.value);
  }
  for (const name of ["classifier", "profile", "device"]) $(`#f-${name}`).value = values[name] ?? "";
  for (const name of ["synthetic_ratio", "alpha", "beta", "mixup_alpha", "mix_prob", "classifier_seeds_per_generator"]) {
    $(`#f-${name}`).value = [values[name]].flat().join(", ");
  }
  $("#f-filter_tau").value = values.filter_tau ?? "";
  $("#f-samples_per_class").value = values.samples_per_class ?? "";
  $("#f-class_balanced").checked = values.class_balanced;
  $("#f-figures").checked = values.figures;
  $("#f-seeds").value = values.seeds.join(", ");
  for (const name of ["classifier_settings", "generator_settings"]) {
    const value = values[name] || {};
    $(`#f-${name}`).value = Object.keys(value).length ? JSON.stringify(value) : "";
  }
}

async function buildForm() {
  if (built) return;
  const { choices: c, defaults: found } = await specSchema();
  defaults = found;
  fillChecks($("#f-generators"), "generators", c.generators, defaults.generators);
  fillChecks($("#f-arms"), "arms", c.arms, defaults.arms);
  fillSelect($("#f-classifier"), ["", ...c.classifier], defaults.classifier ?? "");
  $("#f-classifier").options[0].textContent = "the profile's";
  fillSelect($("#f-profile"), c.profile, defaults.profile);
  fillChecks($("#f-partner_pool"), "partner_pool", c.partner_pool, [defaults.partner_pool].flat());
  fillSelect($("#f-device"), c.device, defaults.device);
  fillValues(defaults);
  // One error slot per field, announced with the field (aria-describedby).
  for (const box of document.querySelectorAll("#job-form [data-field]")) {
    const field = box.dataset.field;
    const error = el("p", { class: "field-error", id: `err-${field}` });
    box.append(error);
    const control = box.tagName === "FIELDSET" ? box : box.querySelector("input, select, textarea");
    control?.setAttribute("aria-describedby", error.id);
  }
  built = true;
}

async function loadDatasets(selected) {
  const page = await getJson("datasets?limit=200");
  const select = $("#f-dataset_id");
  fill(
    select,
    page.data.map((d) =>
      el("option", { value: d.id, text: `${d.name} (${d.num_images} images)`, selected: d.id === selected }),
    ),
  );
  if (!page.data.length) {
    select.append(el("option", { value: "", text: "no datasets yet: upload one first" }));
  }
}

function parseJsonField(name, problems) {
  const raw = $(`#f-${name}`).value.trim();
  if (!raw) return undefined;
  try {
    const value = JSON.parse(raw);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      problems.push({ field: name, message: "must be a JSON object, e.g. {\"epochs\": 10}" });
      return undefined;
    }
    return value;
  } catch (error) {
    problems.push({ field: name, message: `not valid JSON (${error.message})` });
    return undefined;
  }
}

/** The request body, with values passed through unparsed where they are not numbers: the API says why. */
function buildSpec(form) {
  const problems = [];
  const checked = (name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
  const spec = {
    dataset_id: form.elements.dataset_id.value,
    generators: checked("generators"),
    arms: checked("arms"),
    profile: form.elements.profile.value,
    device: form.elements.device.value,
    class_balanced: form.elements.class_balanced.checked,
    figures: form.elements.figures.checked,
  };
  const pools = checked("partner_pool");
  // one pool is the plain setting; two are a list the study chooses from on validation
  spec.partner_pool = pools.length === 1 ? pools[0] : pools;
  for (const name of NUMBER_FIELDS) {
    const raw = form.elements[name].value.trim();
    if (raw === "") continue;
    const toNumber = (text) => (Number.isFinite(Number(text)) ? Number(text) : text);
    // GenMix settings also take a comma-separated list: the study then picks one per seed on validation
    spec[name] = LIST_FIELDS.includes(name) && raw.includes(",") ? raw.split(/[\s,]+/).filter(Boolean).map(toNumber) : toNumber(raw);
  }
  spec.seeds = form.elements.seeds.value
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((t) => (/^-?\d+$/.test(t) ? Number(t) : t));
  if (form.elements.classifier.value) spec.classifier = form.elements.classifier.value;
  if (extending) spec.extends = extending;
  for (const name of ["classifier_settings", "generator_settings"]) {
    const value = parseJsonField(name, problems);
    if (value) spec[name] = value;
  }
  return { spec, problems };
}

function clearErrors() {
  $("#job-form-error").textContent = "";
  for (const error of document.querySelectorAll("#job-form .field-error")) error.textContent = "";
  for (const box of document.querySelectorAll("#job-form [aria-invalid]")) box.removeAttribute("aria-invalid");
}

/** Put each problem next to its field (or above the form when it names none); focus the first one. */
function showProblems(problems) {
  const general = [];
  const byField = new Map();
  for (const p of problems) {
    const field = p.field;
    const box = field && document.querySelector(`#job-form [data-field="${field}"]`);
    if (!box) {
      general.push(p.path ? `${p.path}: ${p.message}` : p.message);
      continue;
    }
    const list = byField.get(field) || [];
    const text = p.path && p.path !== field ? `${p.path}: ${p.message}` : p.message;
    if (!list.includes(text)) list.push(text);
    byField.set(field, list);
  }
  let first = null;
  for (const [field, messages] of byField) {
    const box = document.querySelector(`#job-form [data-field="${field}"]`);
    $(`#err-${field}`).textContent = messages.join("; ");
    const control = box.tagName === "FIELDSET" ? box : box.querySelector("input, select, textarea");
    control.setAttribute("aria-invalid", "true");
    if (box.closest("details")) box.closest("details").open = true;
    first ||= box.tagName === "FIELDSET" ? box.querySelector("input") : control;
  }
  const summary = $("#job-form-error");
  const count = problems.length;
  const intro = `The experiment was not launched: ${count} problem${count === 1 ? "" : "s"}`;
  summary.textContent = general.length ? `${intro}. ${general.join(" ")}` : `${intro}; see the marked fields.`;
  (first || summary).focus?.();
}

async function submitJob(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors();
  const { spec, problems } = buildSpec(form);
  if (problems.length) {
    showProblems(problems.map((p) => ({ ...p, path: "" })));
    return;
  }
  const button = $("#job-submit");
  button.disabled = true;
  try {
    const job = await (await request("jobs", { method: "POST", json: spec })).json();
    notify(`Experiment ${job.id.slice(0, 8)} queued.`);
    location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) {
      $("#job-form-error").textContent = error.message;
      return;
    }
    const found = error.status === 404 && /dataset/.test(error.message);
    showProblems(found ? [{ field: "dataset_id", path: "", message: error.message }] : error.problems);
  } finally {
    button.disabled = false;
  }
}

export const experimentView = {
  section: "view-new",
  init() {
    $("#job-form").addEventListener("submit", submitJob);
  },
  async enter({ query }) {
    await buildForm();
    clearErrors();
    const banner = $("#job-form-extends");
    const parentId = query.get("extends");
    const parent = parentId ? await getJson(`jobs/${encodeURIComponent(parentId)}`) : null;
    const wasExtending = extending !== null;
    extending = parent?.id ?? null;
    banner.hidden = !parent;
    if (parent) {
      // The job's settings, with two more seeds: a verdict's power grows with seeds, and their runs are all new.
      const seeds = parent.spec.seeds || [0];
      const next = Math.max(...seeds) + 1;
      fillValues({ ...defaults, ...parent.spec, seeds: [...seeds, next, next + 1] });
      banner.textContent =
        `Extending job ${shortId(parent.id)}: its finished runs are reused and only what you add trains ` +
        "(seeds, arms, generators, classifier seeds, GenMix list values, a filter). Its other settings are filled in; " +
        "changing them is refused, since its runs were made with them.";
    } else if (wasExtending) {
      fillValues(defaults); // a new study after an extension starts from the defaults, not the extended job's
    }
    await loadDatasets(parent ? parent.dataset_id : query.get("dataset"));
  },
};
