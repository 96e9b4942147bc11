"""The live lab in a real headless browser (Debian's chromium, driven by selenium through chromium-driver).

A `grokinterp serve` process over a fixture RUNS_DIR (a copy of the tiny run, a nested copy, a hand-built
model with known neuron frequencies). The page lists the runs; a tiny run launched from the form shows a
curve that grows, can be stopped and resumed; *add stencil* starts a run whose config has the chosen offsets;
a bad override shows the CLI's message and no run directory appears; the wavetable shows one row per neuron
sorted by frequency. Skipped without chromium, chromium-driver, selenium or Dash, except under CI=true.
With GROKINTERP_LAB_SCREENSHOTS=DIR each view is saved there as a PNG (docs/lab.md's pictures).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from grokinterp.cli import main
from grokinterp.config import ConfigError
from grokinterp.runs import Run

from _lab_helpers import HAND_NEURONS, TINY_OVERRIDES, hand_built_run

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CI = os.environ.get("CI", "").lower() in ("true", "1")
SHOTS = os.environ.get("GROKINTERP_LAB_SCREENSHOTS")
HOSTILE = "<img src=x onerror=alert(1)>"  # a run folder named like markup: shown as text, never run
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


def _missing() -> list[str]:
    missing = [f"{p} (apt-get install chromium chromium-driver)" for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    for module, extra in (("selenium", "dev"), ("dash", "app")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (pip install -e '.[{extra}]')")
    return missing


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if CI:
            pytest.fail(f"CI=true but the browser tests lack: {', '.join(missing)}")
        pytest.skip(f"needs {', '.join(missing)}; required under CI=true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
                "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_run, browser):
    """`grokinterp serve RUNS_DIR` as a real process; yields (url, RUNS_DIR); SIGTERM at the end (the lab
    then stops the runs it started)."""
    root = tmp_path_factory.mktemp("lab") / "runs"
    shutil.copytree(tiny_run.path, root / "tiny")
    shutil.copytree(tiny_run.path, root / "sweep" / "tiny_copy")
    hand_built_run(root / "hand")
    shutil.copytree(tiny_run.path, root / HOSTILE)
    port = _free_port()
    log = open(root.parent / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "grokinterp.cli", "serve", str(root), "--port", str(port),
                             "--poll", "0.5"], env=ENV, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"grokinterp serve did not come up: {(root.parent / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.3)
    yield url, root
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except StaleElementReferenceException:
            value = None  # Dash re-rendered the element between find and read: look again
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def open_page(browser, url: str, tab: str | None = None):
    from selenium.webdriver.common.by import By

    browser.get(url)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#runs-table tr[data-run]"), 60, "the runs table")
    if tab:
        browser.find_element(By.XPATH, f"//*[contains(@class, 'tab') and normalize-space()='{tab}']").click()


def table(browser) -> dict[str, list[str]]:
    """Run name -> its cells, as the page shows them."""
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#runs-table tr[data-run]')].map("
        "r => [r.dataset.run, [...r.cells].map(c => c.textContent)])")
    return dict((name, cells) for name, cells in rows)


def graph_traces(browser, graph_id: str) -> list[dict]:
    """Name and point count of each trace the graph `graph_id` has drawn."""
    return browser.execute_script(
        "const g = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
        "return g && g._fullData ? g._fullData.map(t => ({name: t.name, n: t.x ? t.x.length : 0})) : [];", graph_id)


def fill(browser, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = browser.find_element(By.ID, element_id)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(text)


def pick(browser, dropdown_id: str, value: str) -> None:
    """Choose `value` in a dcc.Dropdown as a person would: open it, type, Enter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.ID, dropdown_id).click()
    wait_for(lambda: browser.find_elements(By.XPATH, "//*[@role='option']"), 10, f"{dropdown_id}'s options")
    browser.switch_to.active_element.send_keys(value)

    def click_option():
        options = [o for o in browser.find_elements(By.XPATH, "//*[@role='option']") if o.text == value]
        if options:
            options[0].click()
            return True
        return False

    wait_for(click_option, 10, f"option {value!r}")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)


def shot(browser, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def launch(browser, name: str, overrides: str, arm: str = "none", offsets: tuple[int, ...] | None = None) -> str:
    """Fill the Launch form and press Start; returns the message the page shows."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Launch']").click()
    fill(browser, "launch-name", name)
    fill(browser, "launch-overrides", overrides)
    browser.find_element(By.CSS_SELECTOR, f"#launch-arm input[value='{arm}']").click()
    if offsets is not None:
        for box in browser.find_elements(By.CSS_SELECTOR, "#stencil-offsets input[type=checkbox]"):
            if (int(box.get_attribute("value")) in offsets) != box.is_selected():
                box.click()
    shot(browser, f"launch_{arm}")
    before = browser.find_element(By.ID, "launch-message").text
    browser.find_element(By.ID, "launch-btn").click()
    return wait_for(lambda: (m := browser.find_element(By.ID, "launch-message").text) != before and m, 30,
                    "the launch message")


def test_page_lists_the_runs(browser, lab):
    from selenium.webdriver.common.by import By

    url, root = lab
    started = time.perf_counter()
    open_page(browser, url)
    load_s = time.perf_counter() - started
    rows = wait_for(lambda: (t := table(browser)) and set(t) == {"tiny", "sweep/tiny_copy", "hand", HOSTILE} and t, 30,
                    "four runs listed")
    summary = Run(root / "tiny").summary
    cells = dict(zip(["run", "status", "step", "of", "memorized", "grokked"], rows["tiny"]))
    assert cells["status"] == summary["status"] == "grokked"
    assert int(cells["memorized"]) == summary["memorization_step"] and int(cells["grokked"]) == summary["grokking_step"]
    assert int(cells["step"]) == summary["final_step"]
    wait_for(lambda: graph_traces(browser, "runs-acc"), 30, "the latest run's curves")
    print(f"\npage load to a filled runs table: {load_s:.2f} s")
    # the Wavetable opens on the run written last (after `make train`, the quick run), at its last checkpoint
    latest = max(("tiny", "sweep/tiny_copy", "hand", HOSTILE), key=lambda n: (root / n / "metrics.csv").stat().st_mtime)
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Wavetable']").click()
    n = len(Run(root / latest).steps)
    wait_for(lambda: f"({n} of {n} checkpoints)" in browser.find_element(By.ID, "wt-step-label").text, 60,
             "the latest run's wavetable")
    assert browser.find_element(By.CSS_SELECTOR, "#wt-run").text.strip() == latest


def test_names_are_shown_as_text(browser, lab):
    from selenium.webdriver.common.by import By

    url, root = lab
    open_page(browser, url)
    wait_for(lambda: HOSTILE in table(browser), 30, "the run named like markup")
    assert not browser.find_elements(By.CSS_SELECTOR, "#runs-table img, #runs-select img")
    box = [b for b in browser.find_elements(By.CSS_SELECTOR, "#runs-select label") if b.text == HOSTILE]
    box[0].click()
    legend = wait_for(lambda: [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#runs-acc .legendtext")
                               if HOSTILE in t.text], 30, "the legend entry")
    assert legend == [f"{HOSTILE} train", f"{HOSTILE} test"]
    assert not browser.find_elements(By.CSS_SELECTOR, "#runs-acc img")
    assert browser.execute_script("return window.alerted === undefined")


def test_launched_run_curve_appears_grows_stops_and_resumes(browser, lab):
    from selenium.webdriver.common.by import By

    url, root = lab
    open_page(browser, url)
    message = launch(browser, "live", TINY_OVERRIDES + " --train.steps=3000")
    assert message.startswith("started live")
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Runs']").click()

    def points():
        return sum(t["n"] for t in graph_traces(browser, "runs-acc") if t["name"].startswith("live"))

    first = wait_for(points, 120, "the launched run's curve")
    wait_for(lambda: points() > first, 60, "the curve to grow")
    assert table(browser)["live"][1] == "running"
    shot(browser, "runs")
    browser.find_element(By.ID, "stop-btn").click()  # `live` is ticked: the launch ticks the run it starts
    wait_for(lambda: "live: stopped" in browser.find_element(By.ID, "runs-message").text, 30, "the stop")
    wait_for(lambda: table(browser)["live"][1] == "stopped", 30, "status stopped")
    stopped_at = int(table(browser)["live"][2])
    browser.find_element(By.ID, "resume-btn").click()
    wait_for(lambda: "live: resuming" in browser.find_element(By.ID, "runs-message").text, 30, "the resume")
    done = wait_for(lambda: table(browser)["live"][1] in ("grokked", "memorized", "not_learned") and table(browser)["live"],
                    240, "the resumed run to finish")
    assert int(done[2]) == 3000 > stopped_at
    rows = Run(root / "live").metrics
    assert rows["step"].tolist() == list(range(3001))


def test_add_stencil_starts_a_run_with_the_chosen_offsets(browser, lab):
    url, root = lab
    open_page(browser, url)
    message = launch(browser, "stencil_arm", TINY_OVERRIDES + " --train.steps=20", arm="stencil", offsets=(0, 1))
    assert message.startswith("started stencil_arm")
    config = wait_for(lambda: (root / "stencil_arm" / "config.json").is_file() and Run(root / "stencil_arm").config,
                      120, "the stencil run's config.json")
    assert config.plugins == {"probe_stencil": {"offsets": [0, 1], "lamb": 0.1}}
    assert config.task.p == 23 and config.train.steps == 20


@pytest.mark.parametrize("overrides", ["--task.p=100", "--optim.lrr=1"])
def test_bad_override_shows_the_cli_message_and_starts_nothing(browser, lab, overrides, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    url, root = lab
    assert main(["train", "--no-progress", "--out", str(tmp_path / "x"), overrides]) == 2
    cli_message = capsys.readouterr().err.strip()
    before = sorted(p.name for p in root.iterdir())
    open_page(browser, url)
    message = launch(browser, "bad_run", overrides)
    assert message == cli_message
    assert "error" in browser.find_element(By.ID, "launch-message").get_attribute("class")
    shot(browser, "launch_error")
    time.sleep(1.5)  # a run started by mistake would have made its folder by now
    assert not (root / "bad_run").exists()
    assert sorted(p.name for p in root.iterdir()) == before


def test_wavetable_one_row_per_neuron_sorted_by_frequency(browser, lab):
    url, root = lab
    open_page(browser, url, tab="Wavetable")
    pick(browser, "wt-run", "hand")
    rows = wait_for(lambda: browser.execute_script(
        "const g = document.querySelector('#wt-table .js-plotly-plot');"
        "return g && g._fullData && g._fullData.length == 2 ? g._fullData.map(t => Array.from(t.customdata, r => Array.from(r[0]))) : null;"),
        60, "the wavetable")
    for panel in rows:
        assert len(panel) == len(HAND_NEURONS)  # one row per neuron
        neurons = [int(n) for n, _ in panel]
        freqs = [int(k) for _, k in panel]
        assert sorted(neurons) == list(range(len(HAND_NEURONS)))
        assert freqs == sorted(freqs) == [HAND_NEURONS[n][0] for n in neurons]
    title = browser.execute_script("return document.querySelector('#wt-table .js-plotly-plot').layout.title.text")
    assert "key frequencies 1, 2, 5" in title
    assert graph_traces(browser, "wt-spectrum") and graph_traces(browser, "wt-hist")


def test_wavetable_and_compare_views_of_a_trained_run(browser, lab):
    from selenium.webdriver.common.by import By

    url, root = lab
    open_page(browser, url, tab="Wavetable")
    pick(browser, "wt-run", "tiny")
    n = len(Run(root / "tiny").steps)
    wait_for(lambda: f"({n} of {n} checkpoints)" in browser.find_element(By.ID, "wt-step-label").text, 60,
             "the slider at the last checkpoint")
    wait_for(lambda: browser.execute_script(
        "const g = document.querySelector('#wt-table .js-plotly-plot');"
        "return g && g._fullData && g._fullData.length == 2 && g._fullData[0].z.length == 64;"), 60, "the tiny run's wavetable")
    shot(browser, "wavetable")
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Compare']").click()
    names = ["tiny", "sweep/tiny_copy"] + (["live"] if (root / "live" / "config.json").is_file() else [])
    for name in names:
        pick(browser, "cmp-runs", name)
    wait_for(lambda: len(graph_traces(browser, "cmp-test_acc")) == len(names), 60, "the comparison overlay")
    shot(browser, "compare")
