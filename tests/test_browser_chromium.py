"""The feature browser in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) opens the site from disk, follows the link to a
model, sorts, filters, searches, opens a latent page and checks what it shows. A
screenshot of each page is kept in test-artifacts/ (or $SAELAB_ARTIFACTS).

Skipped when Chromium or ChromeDriver is missing, unless SAELAB_REQUIRE_BROWSER=1 (CI
installs both and sets it, so there the test cannot silently skip).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("SAELAB_REQUIRE_BROWSER") == "1":
            pytest.fail("SAELAB_REQUIRE_BROWSER=1 but chromium / chromedriver are not installed "
                        "(apt-get install chromium chromium-driver)")
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: no network calls
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def _artifacts() -> Path:
    out = Path(os.environ.get("SAELAB_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_browser_sorts_filters_and_opens_a_latent(quick_run, tmp_path, browser):
    from selenium.webdriver.common.by import By

    from experiments.browse import build_browser
    from features.browser import BrowserConfig

    run, _ = quick_run
    site = tmp_path / "site"
    build_browser(run, site, BrowserConfig(), ["base", "sft-noisy-trace"], log=lambda *a: None)
    feats = json.loads((run / "features" / "base.json").read_text())
    d_sae = len(feats["reason_score"]["all"])

    browser.get((site / "index.html").as_uri())
    assert "saelab feature browser" in browser.title
    browser.find_element(By.LINK_TEXT, "base").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
    assert len(rows) == d_sae
    # sorted by ReasonScore, largest first, by default
    first = rows[0].find_element(By.TAG_NAME, "a").text
    assert first == f"#{feats['reason_score']['top'][0]['latent']}"

    def column(label: str) -> list[str]:
        heads = [h.text.rstrip(" ▲▼") for h in browser.find_elements(By.CSS_SELECTOR, "#index thead th")]
        k = heads.index(label)
        return [r.find_elements(By.TAG_NAME, "td")[k].text
                for r in browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")]

    density_head = [h for h in browser.find_elements(By.CSS_SELECTOR, "#index thead th") if h.text == "density"][0]
    density_head.click()
    values = [float(v) for v in column("density")]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    density_head = [h for h in browser.find_elements(By.CSS_SELECTOR, "#index thead th")
                    if h.text.startswith("density")][0]
    density_head.click()  # again: ascending
    values = [float(v) for v in column("density")]
    assert values == sorted(values)
    [h for h in browser.find_elements(By.CSS_SELECTOR, "#index thead th") if h.text.startswith("density")][0].click()
    browser.save_screenshot(str(_artifacts() / "browser-index.png"))  # densest first

    browser.find_element(By.ID, "only-reasoning").click()
    shown = browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
    assert len(shown) == len(set(feats["table"]["chosen"]["reasoning"]))
    browser.find_element(By.ID, "only-reasoning").click()
    browser.find_element(By.ID, "search").send_keys("1")
    ids = column("latent")
    assert ids and all(i.startswith("#1") for i in ids)
    assert browser.find_element(By.ID, "count").text.startswith(f"{len(ids)} of {d_sae}")

    target = ids[0]
    browser.find_element(By.LINK_TEXT, target).click()
    assert browser.find_element(By.ID, "title").text == f"base · latent {target}"
    stats = browser.find_element(By.ID, "stats").text
    assert "density" in stats and "max activation" in stats
    # the densest latent whose id starts with 1 is alive: its page shows its contexts
    assert browser.find_elements(By.CSS_SELECTOR, "#top-contexts .ctx")
    assert "dead" not in [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".tag")]
    assert browser.find_element(By.ID, "scores").text.count("ReasonScore") == 1
    assert "sft-noisy-trace" in browser.find_element(By.ID, "compare").text
    browser.save_screenshot(str(_artifacts() / "browser-latent.png"))
    browser.find_element(By.LINK_TEXT, "base index").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")) == d_sae
    # a search that is not a number filters the text columns: the ground-truth explanations
    expl = [e for e in feats["explanations"] if e is not None]
    word = expl[0]["predicate"][0]["label"] + " = "
    browser.find_element(By.ID, "search").send_keys(word)
    want = sum(word in e["text"] for e in expl)
    assert browser.find_element(By.ID, "count").text.startswith(f"{want} of {d_sae}")
    # the elicit stage's crosscoder, from the site index: its own tag filter (fine-tuned-leaning latents)
    rec = json.loads((run / "elicit" / "sft-noisy-trace.json").read_text())
    browser.get((site / "index.html").as_uri())
    browser.find_element(By.PARTIAL_LINK_TEXT, "crosscoder base × sft-noisy-trace").click()
    cc = rec["crosscoders"]["blocks.1.hook_resid_post"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")) == len(cc["latent_class"])
    only = browser.find_element(By.CSS_SELECTOR, "input[data-tag]")
    assert only.get_attribute("data-tag") == "finetuned"
    only.click()
    from experiments.browse_elicit import chosen_latents

    chosen = set(chosen_latents(cc).get("finetuned", []))
    shown = browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
    assert {r.find_element(By.TAG_NAME, "a").text for r in shown} == {f"#{i}" for i in chosen}


def test_browser_opens_a_pair_run(tmp_path, browser):
    """A pair run's browser (a tiny Qwen2 pair through the pair pipeline): the index sorted by
    ReasonScore, its top latents tagged, a latent page with contexts, the other model and the
    steering runs that clamped it."""
    from selenium.webdriver.common.by import By

    from experiments.browse import build_browser
    from features.browser import BrowserConfig
    from tests.test_browser_pairs import make_pair_run

    run = make_pair_run(tmp_path)
    site = tmp_path / "site"
    build_browser(run, site, BrowserConfig(), log=lambda *a: None)
    feats = json.loads((run / "features" / "base.json").read_text())
    score = feats["reason_score"]
    d_sae = len(score)

    browser.get((site / "index.html").as_uri())
    assert "saelab feature browser" in browser.title
    assert {a.text for a in browser.find_elements(By.CSS_SELECTOR, "a")} >= {"base", "perturbed"}
    browser.find_element(By.LINK_TEXT, "base").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
    assert len(rows) == d_sae
    best = min(range(d_sae), key=lambda i: (-score[i], i))  # ReasonScore, largest first, by default
    assert rows[0].find_element(By.TAG_NAME, "a").text == f"#{best}"
    browser.find_element(By.ID, "only-reasoning").click()
    shown = [r.find_element(By.TAG_NAME, "a").text for r in browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")]
    assert sorted(shown) == sorted(f"#{i}" for i in feats["top"])
    browser.save_screenshot(str(_artifacts() / "browser-pair-index.png"))

    top = feats["top"][0]
    browser.find_element(By.LINK_TEXT, f"#{top}").click()
    assert browser.find_element(By.ID, "title").text == f"base · latent #{top}"
    assert "reasoning" in [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".tag")]
    assert browser.find_elements(By.CSS_SELECTOR, "#top-contexts .ctx")
    assert browser.find_element(By.ID, "scores").text.count("ReasonScore") == 1
    assert "perturbed" in browser.find_element(By.ID, "compare").text
    assert browser.find_elements(By.CSS_SELECTOR, "#logits-pos tbody tr")
    steering = browser.find_element(By.ID, "steering").text
    assert "perturbed" in steering and "clamp reasoning latents" in steering
    browser.save_screenshot(str(_artifacts() / "browser-pair-latent.png"))
    browser.find_element(By.LINK_TEXT, "base index").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")) == d_sae
