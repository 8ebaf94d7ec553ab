"""The lab's web page in a real browser against a real service: key, upload, launch, watch, results, samples,
downloads and cancel, at 1280x800 and at a narrow 420x800, with screenshots of every page."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.processes import GenmixServe as Service

from models.spec import ExperimentSpec

QUICK_CLASSIFIER = '{"epochs": 4, "batch_size": 16}'
QUICK_GENERATOR = '{"dcgan": {"iterations": 40, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10}}'
SLOW_GENERATOR = '{"dcgan": {"iterations": 20000, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10}}'
ALL_LOADED = "() => [...document.querySelectorAll('{where} img')].every(i => i.naturalWidth > 0)"
MEAN_STD = re.compile(r"^\d+\.\d ± \d+\.\d$")

pytestmark = pytest.mark.timeout(420)


WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-scroll'))
  .slice(0, 8).map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`)"""


def _no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    wide = page.evaluate(WIDEST) if widths[0] > widths[1] else []
    assert widths[0] <= widths[1], f"page {widths[0]} px wide in a {widths[1]} px window: {wide}"


def _fill_experiment(page: Any, generator: str, seeds: str) -> None:
    """Baseline, MixUp, generative and GenMix with DCGAN; tiny classifier and generator settings."""
    for arm in ("baseline", "mixup", "generative", "genmix"):
        page.get_by_label(arm, exact=True).check()
    page.get_by_label("augmix", exact=True).uncheck()
    page.get_by_label("dcgan", exact=True).check()
    page.get_by_role("textbox", name=re.compile("^Seeds")).fill(seeds)
    if not page.locator("details.advanced").evaluate("d => d.open"):
        page.get_by_text("Advanced settings").click()
    page.get_by_label("Classifier settings").fill(QUICK_CLASSIFIER)
    page.get_by_label("Generator settings").fill(generator)
    page.get_by_label("Sample images per class").fill("4")


def _watch_progress(page: Any, timeout: float) -> list[int]:
    """Progress values the job page shows until the job finishes (no reload: read off the live page)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = page.locator("#job-status").inner_text()
        value = int(page.locator("#job-progress").evaluate("bar => bar.value"))
        if not seen or seen[-1] != value:
            seen.append(value)
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    return seen


def test_lab_workflow_in_a_browser(browser: Any, service: Service, breast_npz: Path, shots: Path,
                                   tmp_path: Path) -> None:  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(20_000)
    try:
        _workflow(page, service, breast_npz, shots, tmp_path)
    except Exception:
        page.screenshot(path=str(shots / "failure.png"), full_page=True)
        print(f"screenshots in {shots}\nservice log:\n{service.log_tail()}")
        raise
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
    print(f"screenshots in {shots}")


def _workflow(page: Any, service: Service, breast_npz: Path, shots: Path, tmp_path: Path) -> None:
    api = httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {service.api_key}"})

    # 1. The page loads without a key; a wrong key is refused in the API's words; the right one is kept.
    page.goto(service.base_url + "/")
    assert page.url.endswith("/ui/")
    key_input = page.get_by_label("API key", exact=True)
    key_input.fill("gmx_not-a-real-key")
    page.get_by_role("button", name="Use this key").click()
    page.locator("#key-error").filter(has_text="not accepted").wait_for()
    assert "a valid API key is required" in page.locator("#key-error").inner_text()
    assert key_input.get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(shots / "01-key-refused.png"))
    key_input.fill(service.api_key)
    page.get_by_role("button", name="Use this key").click()
    page.get_by_role("heading", name="Datasets", level=1).wait_for()
    assert page.evaluate("sessionStorage.getItem('genmix.apiKey')") == service.api_key

    # 2. A bad upload shows the API's own message; a BreastMNIST slice uploads with a progress bar.
    bad = tmp_path / "notes.zip"
    bad.write_bytes(b"this is not a zip archive")
    expected = api.post("/datasets", files={"file": ("notes.zip", bad.read_bytes())})
    assert expected.status_code >= 400
    page.set_input_files("#upload-file", str(bad))
    page.get_by_role("button", name="Upload").click()
    page.locator("#upload-error").filter(has_text=re.compile(".+")).wait_for()
    assert page.locator("#upload-error").inner_text() == expected.json()["detail"]
    page.screenshot(path=str(shots / "02-upload-refused.png"))

    # The DICOM options are labelled; width and level are asked for (and sent) only with a custom window.
    page.get_by_text("DICOM and ROI options").click()
    width, level = page.get_by_label("Window width"), page.get_by_label("Window level")
    assert width.is_disabled() and level.is_disabled()
    page.get_by_label("Window", exact=True).select_option("custom")
    assert width.is_enabled() and level.is_enabled()
    page.get_by_label("Window", exact=True).select_option("abdomen")
    assert width.is_disabled()

    page.set_input_files("#upload-file", str(breast_npz))
    page.locator("#upload-name").fill("breast-slice")
    page.get_by_label("Class names").fill("malignant,normal_or_benign")
    page.get_by_role("button", name="Upload").click()
    card = page.locator("article.dataset", has_text="breast-slice")
    card.wait_for()
    assert page.locator("#upload-progress").evaluate("bar => bar.value") == 100
    assert "Uploaded 100 %" in page.locator("#upload-progress-label").inner_text()
    malignant = card.locator("tr", has_text="malignant")
    assert [c.strip() for c in malignant.locator("td.num").all_inner_texts()] == ["24", "10", "20", "54"]
    bars = card.locator(".bar-fill").evaluate_all("fills => fills.map(f => f.getBoundingClientRect().width)")
    assert len(bars) == 2 and 0 < bars[0] < bars[1], f"the bar chart should show the imbalance: {bars}"
    assert "24 (30 %)" in card.locator(".class-chart").inner_text()
    assert "2.3×" in card.inner_text()
    page.screenshot(path=str(shots / "03-datasets.png"), full_page=True)

    # 3. New experiment: the API's validation message appears next to the field it names.
    card.get_by_role("link", name="New experiment").click()
    page.get_by_role("heading", name="New experiment", level=1).wait_for()
    page.locator("#f-dataset_id option", has_text="breast-slice").wait_for(state="attached")
    chosen = page.get_by_label("Dataset", exact=True).evaluate("s => s.selectedOptions[0].text")
    assert chosen.startswith("breast-slice")
    # the form shows the one spec's defaults, read from /openapi.json
    spec = ExperimentSpec()
    for name in ("alpha", "mixup_alpha", "beta", "synthetic_ratio", "mix_prob"):
        assert float(page.locator(f"#f-{name}").input_value()) == getattr(spec, name), name
    assert page.locator("#f-seeds").input_value() == ", ".join(map(str, spec.seeds))
    assert int(page.locator("#f-classifier_seeds_per_generator").input_value()) == spec.classifier_seeds_per_generator
    assert page.locator("#f-filter_tau").input_value() == ""  # off unless asked
    pools = page.locator("#f-partner_pool input:checked").evaluate_all("boxes => boxes.map(b => b.value)")
    assert pools == [spec.partner_pool]
    _fill_experiment(page, QUICK_GENERATOR, "0, 1")
    page.get_by_label("GenMix α").fill("0")
    page.get_by_label("Synthetic filter τ").fill("1.5")
    page.get_by_role("button", name="Launch experiment").click()
    page.locator("#err-alpha").filter(has_text=re.compile(".+")).wait_for()
    assert "greater than 0" in page.locator("#err-alpha").inner_text()
    assert "less than 1" in page.locator("#err-filter_tau").inner_text()
    page.get_by_label("Synthetic filter τ").fill("")
    assert page.get_by_label("GenMix α").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(shots / "04-new-experiment-invalid.png"), full_page=True)
    page.get_by_label("GenMix α").fill("0.3")
    page.get_by_label("Synthetic filter τ").fill("0.5")  # its drop counts show on the generator cards (step 7)
    page.get_by_role("button", name="Launch experiment").click()

    # 4. The job page follows the job live (server-sent events, no reload) to 100 %.
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.__samePage = true")
    started = "() => ['running', 'succeeded'].includes(document.querySelector('#job-status').textContent)"
    page.wait_for_function(started, timeout=120_000)
    page.screenshot(path=str(shots / "05-job-running.png"), full_page=True)
    seen = _watch_progress(page, timeout=240)
    assert page.locator("#job-status").inner_text() == "succeeded", (seen, service.log_tail())
    assert page.evaluate("window.__samePage") is True, "the page reloaded"
    assert seen[-1] == 100 and any(0 < v < 100 for v in seen), f"progress seen: {seen}"
    assert page.locator("#job-progress-text").inner_text() == "100 %"
    # the job's seeds (two) cannot reach a verdict, and the page says so next to the seeds, in the API's words
    note = api.get(f"/jobs/{job_id}").json()["design_note"]
    assert note.startswith("2 seeds × 1 classifier seed: 2 seed units, too few for a verdict")
    assert note in page.locator("#job-spec").inner_text()

    # 5. The verdicts come first: does GenMix help, against each reference, in the API's words.
    verdicts = page.locator("#verdicts")
    verdicts.locator("li").first.wait_for()
    box = page.locator("#results")
    assert box.evaluate("b => b.firstElementChild.id") == "verdicts"  # above the table
    lines = verdicts.locator("li").all_inner_texts()
    expected = api.get(f"/jobs/{job_id}").json()["results"]["verdicts"]["lines"]
    assert lines == expected and len(lines) == 7, lines  # vs baseline, MixUp and DCGAN alone; filtered too, and
    # the filtered GenMix against the unfiltered one
    assert sum(line.startswith("GenMix (DCGAN), filtered vs ") for line in lines) == 4, lines
    number = r"[+-]\d+\.\d macro F1 \[-?\d+\.\d, -?\d+\.\d\]"
    # two seeds are two seed units: too few for a verdict, and the line says so with its numbers
    few = rf"2 seeds, too few for a verdict \({number}; a verdict needs 3 or more seeds\)"
    verdict = re.compile(rf"^GenMix \(DCGAN\)(, filtered)? vs .+: {few}$")
    assert all(verdict.match(line) for line in lines), lines
    assert "2 seeds" in verdicts.inner_text()  # what the intervals cover
    # what MixUp, the lab's usual augmentation, does against the baseline, as the API computes it (not a verdict)
    mixup = next(c for c in api.get(f"/jobs/{job_id}").json()["results"]["references"] if c["metric"] == "macro_f1")
    assert mixup["line"].startswith(f"MixUp (Real) vs Baseline (Real): {mixup['mean_diff'] * 100:+.1f} macro F1 [")
    assert mixup["line"] in page.locator("#references").inner_text()
    plans = api.get(f"/jobs/{job_id}").json()["results"]["verdicts"]["plans"]
    plan_text = f"Planning: {'; '.join(plans)}. Extend this study with more seeds"
    assert len(plans) == 7 and page.locator("#verdict-plans").inner_text() == plan_text
    link = page.locator("#verdict-plans a", has_text="Extend this study")  # the plan, acted on (step 12)
    assert link.get_attribute("href") == f"#/new?extends={job_id}"

    # 6. The results table: one row per method, mean ± std over the two seeds, best values marked.
    table = page.locator("#results-table")
    table.wait_for()
    methods = table.locator("tbody th").all_inner_texts()
    assert methods == ["Baseline (Real)", "MixUp (Real)", "DCGAN (50%)", "DCGAN (50%), filtered", "GenMix (DCGAN)",
                       "GenMix (DCGAN), filtered"]  # fmt: skip
    headers = table.locator("thead").inner_text()
    for name in ("Acc.", "Macro F1", "AUC", "malignant", "normal_or_benign", "Sens.", "Spec."):
        assert name in headers
    first_row = table.locator("tbody tr").first.locator("td").all_inner_texts()
    assert first_row[0] == "2"  # seeds
    assert MEAN_STD.match(first_row[1].replace("▲", "").replace("(best)", "").strip()), first_row
    assert table.locator("td.best").count() >= 3 + 4  # at least one per column
    job = api.get(f"/jobs/{job_id}").json()
    accuracies = [r["accuracy"] for r in job["results"]["runs"] if r["arm"] == "baseline"]
    assert first_row[1].startswith(f"{100 * float(np.mean(accuracies)):.1f}")

    # 7. Figures load through the artifacts endpoints (the key goes in a header, so they are blobs).
    page.locator("#figures img[src^='blob:']").first.wait_for()
    page.wait_for_function(ALL_LOADED.format(where="#figures"))
    figure_names = page.locator("#figures figcaption").all_inner_texts()
    for prefix in ("Sample grid", "t-SNE", "Confusion matrix", "Learning curves"):
        assert any(name.startswith(prefix) for name in figure_names), figure_names
    assert page.locator("#quality article").count() == 2  # DCGAN, seeds 0 and 1
    for card in page.locator("#quality article").all():  # what the filter dropped, of the images each seed sampled
        sampled = re.search(r"Synthetic images per class: (\d+), (\d+)\.", card.inner_text())
        line = card.locator(".filter-line").inner_text()
        dropped = re.fullmatch(r"Synthetic filter \(τ = 0\.5\): dropped (\d+) of (\d+) malignant, (\d+) of (\d+) "
                               r"normal_or_benign images, .+", line)  # fmt: skip
        assert sampled and dropped, (card.inner_text(), line)
        assert (dropped[2], dropped[4]) == sampled.groups() and int(dropped[1]) <= int(dropped[2]), line

    # 8. The sample browser: real images, a class filter, keyboard tabs, GenMix with λ and both parents.
    grid = page.locator("#samples-grid")
    grid.locator("img[src^='blob:']").first.wait_for()
    assert grid.locator("li").count() > 0
    page.get_by_label("Class", exact=True).select_option(label="malignant")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#samples-grid .cls')].every(c => c.textContent === 'malignant')"
    )
    page.get_by_role("tab", name="Real").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("tab", name="Synthetic").get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-synthetic"
    grid.locator("img[src^='blob:']").first.wait_for()
    page.keyboard.press("End")
    assert page.get_by_role("tab", name="GenMix").get_attribute("aria-selected") == "true"
    genmix = grid.locator("li.genmix").first
    genmix.locator(".parents img[src^='blob:']").nth(1).wait_for()
    assert re.match(r"λ = \d\.\d{3}$", genmix.locator(".lam").inner_text())
    assert genmix.locator(".parents figure").count() == 2
    page.wait_for_function(ALL_LOADED.format(where="#samples-grid"))
    if page.get_by_role("button", name="Next").is_enabled():
        before = page.locator("#samples-range").inner_text()
        page.get_by_role("button", name="Next").click()
        page.locator("#samples-range").filter(has_not_text=before).wait_for()
    page.locator("#samples-title").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "06-job-results.png"), full_page=True)

    # 9. Download the GenMix export (fetched with the key, saved as a file) and check it is the real thing.
    export_button = page.locator("button[data-kind='genmix_export']").first
    with page.expect_download() as download_info:
        export_button.click()
    saved = tmp_path / "export.npz"
    download_info.value.save_as(saved)
    with np.load(saved) as export:
        assert {"images", "soft_labels", "lam"} <= set(export.files)
        assert len(export["lam"]) == len(export["images"]) > 0

    # 10. At 420 px nothing overflows sideways (wide tables scroll inside their own region).
    page.set_viewport_size({"width": 420, "height": 800})
    _no_horizontal_overflow(page)
    page.screenshot(path=str(shots / "07-job-narrow.png"), full_page=True)
    page.goto(service.base_url + "/ui/#/datasets")
    page.locator("article.dataset").first.wait_for()
    _no_horizontal_overflow(page)
    page.screenshot(path=str(shots / "08-datasets-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})

    # 11. A second, long job: the jobs list shows it running live, and Cancel stops it.
    page.goto(service.base_url + "/ui/#/new")
    _fill_experiment(page, SLOW_GENERATOR, "0")
    page.get_by_role("button", name="Launch experiment").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    second = page.url.rsplit("/", 1)[1]
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f"tr[data-job-id='{second}']")
    row.locator(".badge", has_text="running").wait_for(timeout=120_000)
    row.locator(".stage", has_text="generator dcgan").wait_for(timeout=60_000)
    page.locator(f"tr[data-job-id='{job_id}'] .badge", has_text="succeeded").wait_for()
    _no_horizontal_overflow(page)
    page.screenshot(path=str(shots / "09-jobs-running.png"), full_page=True)
    row.get_by_role("button", name="Cancel").click()
    row.locator(".badge", has_text="cancelled").wait_for(timeout=60_000)
    assert api.get(f"/jobs/{second}").json()["status"] == "cancelled"
    page.screenshot(path=str(shots / "10-jobs-cancelled.png"), full_page=True)

    # 12. Extend the first study with a third seed: the form comes filled with its settings, only the new seed trains,
    # and with three seed units the page can now give verdicts with intervals over all three seeds.
    page.goto(service.base_url + f"/ui/#/jobs/{job_id}")
    page.locator("#job-status", has_text="succeeded").wait_for()
    page.get_by_role("link", name="Extend this study", exact=True).click()
    page.get_by_role("heading", name="New experiment", level=1).wait_for()
    page.locator("#job-form-extends", has_text=f"Extending job {job_id[:8]}").wait_for()
    assert page.locator("#f-seeds").input_value() == "0, 1, 2, 3"  # the job's seeds and two more
    assert page.locator("#f-filter_tau").input_value() == "0.5"
    assert json.loads(page.get_by_label("Generator settings").input_value()) == json.loads(QUICK_GENERATOR)
    checked = page.locator("#f-arms input:checked").evaluate_all("boxes => boxes.map(b => b.value)")
    assert checked == ["baseline", "mixup", "generative", "genmix"]
    page.get_by_role("textbox", name=re.compile("^Seeds")).fill("0, 1, 2")
    page.screenshot(path=str(shots / "11-extend-form.png"), full_page=True)
    page.get_by_role("button", name="Launch experiment").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    third = page.url.rsplit("/", 1)[1]
    assert third != job_id
    page.locator("#job-spec", has_text=f"job {job_id[:8]} (its finished runs reused)").wait_for()
    page.locator("#job-status", has_text="succeeded").wait_for(timeout=240_000)
    reused = api.get(f"/jobs/{third}").json()
    assert reused["spec"]["extends"] == job_id and reused["spec"]["seeds"] == [0, 1, 2]
    never_ran = [u for u in reused["units"] if not u["attempts"] and u["started_at"] is None]
    assert {u["key"] for u in never_ran} >= {"generator:dcgan:0", "generator:dcgan:1", "classifier:baseline-seed1"}
    assert not any("seed2" in u["key"] or u["key"].endswith(":2") for u in never_ran)  # the new seed trained
    page.locator("#units td", has_text="succeeded (reused)").nth(len(never_ran) - 1).wait_for()
    seeds_cell = page.locator("#results-table tbody tr").first.locator("td").first
    seeds_cell.filter(has_text=re.compile(r"^3$")).wait_for()  # every row over the three seeds
    assert "3 seeds" in page.locator("#verdicts").inner_text()
    page.screenshot(path=str(shots / "12-extended-job.png"), full_page=True)
