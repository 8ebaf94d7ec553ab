// The results table, laid out like the paper's Table 1 (rows: methods; columns: accuracy, macro F1, AUC and
// per-class sensitivity / specificity; mean ± std over seeds; best value per column marked), per-seed runs,
// and the generators' quality numbers from results.json.

import { isActive } from "./jobstate.js";
import { el, generatorName } from "./ui.js";

const OVERALL = [
  { key: "accuracy", label: "Acc.", long: "accuracy", percent: true },
  { key: "macro_f1", label: "Macro F1", long: "macro F1", percent: true },
  { key: "auc", label: "AUC", long: "AUC", percent: false },
];

function fmt(value, percent) {
  return percent ? (100 * value).toFixed(1) : value.toFixed(3);
}

/** Columns of the summary rows the API computes (the CLI's report uses the same code): overall, then per class. */
function columns(classes) {
  const cols = OVERALL.map((c) => ({ ...c, get: (row) => row[c.key] }));
  classes.forEach((name, index) => {
    for (const [key, label] of [["sensitivity", "Sens."], ["specificity", "Spec."]]) {
      cols.push({ key: `${key}-${index}`, label, long: `${name} ${key}`, percent: true, get: (row) => row.per_class[index]?.[key] });
    }
  });
  return cols;
}

/** The verdict lines first (does GenMix help?), then what their intervals cover; from the API's ``verdicts``. */
export function verdictBox(job) {
  const verdicts = job.results?.verdicts;
  if (!verdicts) return null;
  if (!verdicts.comparisons.length) {
    const reasons = [...new Set(verdicts.skipped.map((s) => s.reason))];
    const text = reasons.length ? `No verdict yet: ${reasons.join("; ")}.` : "No verdict yet: it needs a GenMix arm and a reference arm.";
    return el("section", { class: "card verdicts", id: "verdicts", "aria-label": "Verdicts" }, el("p", { class: "muted", text }));
  }
  const spreads = [...new Set(verdicts.comparisons.map((c) => c.spread))];
  return el(
    "section",
    { class: "card verdicts", id: "verdicts", "aria-labelledby": "verdicts-title" },
    el("h3", { id: "verdicts-title", text: "Does GenMix help?" }),
    el(
      "ul",
      { class: "verdict-lines" },
      verdicts.comparisons.map((c) =>
        el("li", { "data-verdict": c.verdict.replace(/\s+/g, "-"), title: `Holm-adjusted p = ${c.p_holm.toFixed(3)}; ${c.pairs} paired runs` }, c.line),
      ),
    ),
    el(
      "p",
      { class: "muted small" },
      `Macro F1 in points, GenMix minus the reference, with 95 % intervals; helps / hurts need a Holm-adjusted p below 0.05 over the ${verdicts.comparisons.length} comparisons. `,
      `The intervals cover ${spreads.join("; ")}.`,
    ),
    ...(verdicts.plans?.length
      ? [el("p", { class: "muted small", id: "verdict-plans" }, `Planning: ${verdicts.plans.join("; ")}. `,
          // more seeds without training again what this job has: an extension reuses its finished runs
          isActive(job) ? null : el("a", { href: `#/new?extends=${encodeURIComponent(job.id)}`, text: "Extend this study with more seeds" }))]
      : []),
  );
}

/** What the lab's usual augmentations (MixUp, AugMix) do against the baseline, paired by seed (not verdicts). */
export function referencesLine(job) {
  const refs = job.results?.references || [];
  if (!refs.length) return null;
  return el(
    "p",
    { class: "muted small", id: "references" },
    `Real-data augmentations against the baseline (points): ${refs.map((r) => r.line).join("; ")}.`,
  );
}

export function resultsTable(job) {
  const rows = job.results.summary;
  const classes = rows.length ? rows[0].per_class.map((c) => c.class) : [];
  const cols = columns(classes);
  const cells = rows.map((row) => cols.map((col) => {
    const stat = col.get(row);
    return stat && stat.mean !== null ? stat : null;
  }));
  // Best per column, compared as displayed (so ties in the shown digits are all marked).
  const best = cols.map((col, j) => {
    const shown = cells.map((row) => (row[j] ? Number(fmt(row[j].mean, col.percent)) : -Infinity));
    const top = Math.max(...shown);
    return shown.map((v) => rows.length > 1 && v === top && v !== -Infinity);
  });
  const seeds = new Set(rows.flatMap((row) => row.seeds)).size;
  const runs = Math.max(0, ...rows.map((row) => row.seeds.length));
  const over = runs > seeds ? `${runs} runs (${seeds} seed${seeds === 1 ? "" : "s"} × ${runs / seeds} classifier seeds)` : `${seeds} seed${seeds === 1 ? "" : "s"}`;

  const head = el(
    "thead",
    {},
    el(
      "tr",
      {},
      el("th", { scope: "col", rowspan: "2", text: "Method" }),
      el("th", { scope: "col", rowspan: "2", class: "num", title: "runs: seeds × classifier seeds per seed", text: "Runs" }),
      OVERALL.map((c) => el("th", { scope: "col", rowspan: "2", class: "num", title: c.long, text: c.label })),
      classes.map((name) => el("th", { scope: "colgroup", colspan: "2", class: "group", text: name })),
    ),
    el("tr", {}, classes.map(() => [el("th", { scope: "col", class: "num", text: "Sens." }), el("th", { scope: "col", class: "num", text: "Spec." })])),
  );
  const body = el(
    "tbody",
    {},
    rows.map((row, i) =>
      el(
        "tr",
        { "data-arm": row.arm },
        el("th", { scope: "row", text: row.label }),
        el("td", { class: "num", text: row.seeds.length }),
        cols.map((col, j) => {
          const s = cells[i][j];
          if (!s) return el("td", { class: "num muted", text: "n/a" });
          const text = fmt(s.mean, col.percent) + (s.n > 1 ? ` ± ${fmt(s.std, col.percent)}` : "");
          if (!best[j][i]) return el("td", { class: "num", text });
          return el(
            "td",
            { class: "num best" },
            el("strong", { text }),
            el("span", { class: "best-mark", "aria-hidden": "true", text: " ▲" }),
            el("span", { class: "visually-hidden", text: " (best)" }),
          );
        }),
      ),
    ),
  );
  const caption = el(
    "caption",
    {},
    `Test-set results: mean ± standard deviation over ${over} `,
    "(accuracy, macro F1, sensitivity and specificity in %; AUC from 0 to 1). ",
    "The best value in each column is bold and marked ▲.",
  );
  const colgroups = [el("colgroup", { span: String(2 + OVERALL.length) }), classes.map(() => el("colgroup", { span: "2" }))];
  return el(
    "div",
    { class: "table-scroll", role: "region", "aria-label": "Results table", tabindex: "0" },
    el("table", { class: "results", id: "results-table" }, caption, colgroups, head, body),
  );
}

export function runsTable(job) {
  const pct = (v) => (v === null || v === undefined ? "n/a" : (100 * v).toFixed(1));
  const rows = job.results.runs.map((r) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, el("code", { text: r.run_id })),
      el("td", { class: "num", text: pct(r.accuracy) }),
      el("td", { class: "num", text: pct(r.macro_f1) }),
      el("td", { class: "num", text: pct(r.balanced_accuracy) }),
      el("td", { class: "num", text: r.auc === null ? "n/a" : r.auc.toFixed(3) }),
      el("td", { class: "num", text: r.best_epoch ?? "—" }),
      el("td", { class: "num", text: r.epochs_trained ?? "—" }),
    ),
  );
  return el(
    "details",
    { class: "runs" },
    el("summary", { text: `Every run (${job.results.runs.length})` }),
    el(
      "div",
      { class: "table-scroll", role: "region", "aria-label": "Every run", tabindex: "0" },
      el(
        "table",
        {},
        el(
          "thead",
          {},
          el("tr", {}, ["Run", "Acc. %", "Macro F1 %", "Balanced acc. %", "AUC", "Best epoch", "Epochs"].map((t, i) =>
            el("th", { scope: "col", class: i ? "num" : null, text: t }))),
        ),
        el("tbody", {}, rows),
      ),
    ),
  );
}

/** Numbers of a nested object as [label, value] pairs ("kid_per_class 0" ...); lists give their last value. */
function numbers(object, prefix = "") {
  const out = [];
  for (const [key, value] of Object.entries(object || {})) {
    const label = `${prefix}${key.replace(/_/g, " ")}`;
    if (typeof value === "number") out.push([label, value]);
    else if (Array.isArray(value) && value.length && value.every((v) => typeof v === "number")) {
      out.push([`${label} (${value.length > 4 ? "last" : "all"})`, value.length > 4 ? value.at(-1) : value]);
    } else if (value && typeof value === "object" && !Array.isArray(value) && prefix.split(" ").length < 3) {
      out.push(...numbers(value, `${label} `));
    }
  }
  return out;
}

function show(value) {
  if (Array.isArray(value)) return value.map(show).join(", ");
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 1000 || Math.abs(value) < 0.001 ? value.toExponential(3) : value.toFixed(4);
}

/** What the synthetic filter dropped from one generator seed's set, per class (results.json's ``filter``). */
function filterLine(filter, classes) {
  const parts = filter.dropped_per_class.map((dropped, k) => `${dropped} of ${filter.sampled_per_class[k]} ${classes[k] ?? `class ${k}`}`);
  return `Synthetic filter (τ = ${filter.tau}): dropped ${parts.join(", ")} images, which the same seed's baseline classifier gave their class a lower probability.`;
}

/** One table per trained generator (and seed): quality figures if recorded, else its training statistics. */
export function qualityTables(results) {
  const generators = results?.generators || {};
  return Object.entries(generators).map(([key, info]) => {
    const quality = info.quality || results.quality?.[key];
    const sections = [
      ["Quality", numbers(quality)],
      ["Training", numbers(info.train_stats)],
    ].filter(([, pairs]) => pairs.length);
    const title = `${generatorName(info.generator || key)}${info.seed !== undefined ? `, seed ${info.seed}` : ""}`;
    const perClass = info.synthetic_per_class ? `Synthetic images per class: ${info.synthetic_per_class.join(", ")}.` : "";
    return el(
      "article",
      { class: "card quality" },
      el("h3", { text: title }),
      perClass ? el("p", { class: "muted", text: perClass }) : null,
      info.filter ? el("p", { class: "muted filter-line", text: filterLine(info.filter, results.dataset?.class_names || []) }) : null,
      sections.length
        ? sections.map(([name, pairs]) =>
            el(
              "table",
              { class: "kv" },
              el("caption", { text: name }),
              el("tbody", {}, pairs.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { class: "num", text: show(v) })))),
            ),
          )
        : el("p", { class: "muted", text: "No quality figures were recorded for this generator." }),
    );
  });
}
