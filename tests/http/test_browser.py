"""The dashboard in a real browser: Debian's chromium driven by selenium (issue #15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from gearpy import __version__, _accel
from gearpy.client import Client

from support.dashboard import make_browser, run_worker, stop_worker

pytestmark = [pytest.mark.external, pytest.mark.slow]  # chromium and its driver
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT = 20  # seconds; the machine running the tests may be loaded


@pytest.fixture
def browser():
    driver = make_browser()
    try:
        yield driver
    finally:
        driver.quit()


def _wait(browser, css: str, timeout: float = WAIT):
    return WebDriverWait(browser, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def _no_js_errors(browser) -> None:
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_overview_loads(dash, browser):
    browser.get(dash.url + "/")
    card = _wait(browser, "#card-version .value")
    assert card.text == __version__
    assert _wait(browser, "#card-mode .value").text == _accel.mode()
    assert _wait(browser, "#card-store .badge").text == "healthy"
    assert _wait(browser, "#rate-chart").tag_name == "svg"
    _no_js_errors(browser)


def test_a_function_appears_after_a_job_is_submitted(dash, browser):
    browser.get(dash.url + "/functions")
    _wait(browser, "#functions")
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-function="thumbnail"]')
    with Client([dash.server.address]) as client:
        client.submit("thumbnail", b"img", background=True, priority="high")
    row = _wait(browser, 'tr[data-function="thumbnail"]')  # the page refreshes itself
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "thumbnail" and cells[1] == "1"  # one queued at high priority
    _no_js_errors(browser)


def test_a_queued_job_is_cancelled_from_its_button(dash, browser):
    with Client([dash.server.address]) as client:
        keep = client.submit("cleanup", b"keep", background=True).handle
        doomed = client.submit("cleanup", b"doomed", background=True).handle
    browser.get(dash.url + "/jobs?function=cleanup")
    button = _wait(browser, f'button.cancel[data-handle="{doomed}"]')
    button.click()
    WebDriverWait(browser, WAIT).until(
        lambda b: not b.find_elements(By.CSS_SELECTOR, f'button.cancel[data-handle="{doomed}"]')
    )
    assert dash.get(f"/api/v1/jobs/{doomed}").json["state"] == "cancelled"
    assert dash.get(f"/api/v1/jobs/{keep}").json["state"] == "queued"
    assert f"HTTP cancel job {doomed} by anonymous" in dash.server.log()
    _no_js_errors(browser)


def test_the_submit_form_runs_a_job_with_a_live_worker(dash, browser, tmp_path):
    worker = run_worker(dash.server, str(EXAMPLES / "tasks.py"), log_path=str(tmp_path / "worker.log"))
    try:
        dash.wait_for(lambda: dash.get("/api/v1/workers").json["workers"], what="the worker")
        browser.get(dash.url + "/submit")
        _wait(browser, "#f-function").send_keys("reverse")
        browser.find_element(By.ID, "f-payload").send_keys("dashboard")
        browser.find_element(By.ID, "f-submit").click()
        result = _wait(browser, '#submit-result[data-outcome="complete"]')
        assert "outcome: complete" in result.text
        assert "result:  draobhsad" in result.text
    finally:
        stop_worker(worker)
    _no_js_errors(browser)


def test_login_is_required_when_credentials_are_configured(make_dash, auth_file, browser):
    dash = make_dash("--http-auth-file", str(auth_file))
    browser.get(dash.url + "/workers")
    _wait(browser, "#login-form")
    assert browser.current_url.endswith("/login?next=/workers")
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys("not-her-password")
    browser.find_element(By.ID, "login-button").click()
    WebDriverWait(browser, WAIT).until(EC.url_contains("failed=1"))
    assert _wait(browser, "#login-failed").is_displayed()
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys("alice-secret")
    browser.find_element(By.ID, "login-button").click()
    _wait(browser, "#workers")
    assert browser.current_url.endswith("/workers")
    assert _wait(browser, "#whoami").text == "alice (admin)"
    # A read-only user sees pages but no action buttons.
    browser.find_element(By.CSS_SELECTOR, "#logout button").click()
    _wait(browser, "#login-form")
    browser.find_element(By.ID, "user").send_keys("bob")
    browser.find_element(By.ID, "password").send_keys("bob-secret")
    browser.find_element(By.ID, "login-button").click()
    _wait(browser, "#overview")
    browser.get(dash.url + "/submit")
    assert "needs the admin role" in _wait(browser, "#submit").text
    _no_js_errors(browser)
