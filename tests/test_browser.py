"""The example app as a person sees it: headless Chromium on /docs, /redoc and /admin.

Debian's ``chromium`` and ``chromium-driver`` drive the pages through Selenium,
against ``python -m example_app`` under uvicorn on a free port, with no internet
needed (the API docs' assets and the admin's are served by the app). Screenshots
go to ``artifacts/browser/`` (ignored by git). When Chromium is missing, the test
installs it with apt-get under CI (root); elsewhere it skips, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.example_server import example_app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "browser"
USER, PASSWORD = "admin", "browser-test-password"
WAIT = 20  # seconds for a page to render


def _binaries() -> tuple[str, str] | None:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _chromium() -> tuple[str, str]:
    """Return Chromium and its driver; install them under CI; skip elsewhere when missing."""
    found = _binaries()
    in_ci = os.environ.get("CI") == "true"
    if found is None and in_ci and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
        ):
            subprocess.run(command, env=env, capture_output=True, check=False, timeout=900)
        found = _binaries()
    if found is None:
        message = (
            "the browser test needs Chromium: apt-get install chromium chromium-driver "
            "(CI installs them itself)"
        )
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The example app with its admin on, on a free port and a new SQLite file."""
    env = {"EXAMPLE_ADMIN_USER": USER, "EXAMPLE_ADMIN_PASSWORD": PASSWORD}
    with example_app(tmp_path, env) as (base_url, _process, _log):
        yield base_url


def test_docs_redoc_and_admin_in_a_real_browser(server: str) -> None:
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400"):
        options.add_argument(argument)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    wait = WebDriverWait(chrome, WAIT)

    def shot(name: str) -> None:
        path = ARTIFACTS / f"{name}.png"
        chrome.save_screenshot(str(path))
        print(f"screenshot: {path}")

    try:
        # /docs: Swagger UI renders the operations; one is expanded and executed.
        chrome.get(f"{server}/docs")
        summary = wait.until(
            ready.element_to_be_clickable(
                (By.CSS_SELECTOR, ".opblock-get .opblock-summary-path[data-path='/users']")
            )
        )
        summary.click()
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".try-out__btn"))).click()
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".execute"))).click()
        status = wait.until(
            ready.visibility_of_element_located(
                (By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")
            )
        )
        assert status.text.strip() == "200"
        body = chrome.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
        assert '"total": 3' in body  # the three seeded users
        shot("docs")

        # /redoc: ReDoc renders the API's title and its operations.
        chrome.get(f"{server}/redoc")
        wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Flash DB blog"))
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-section-id]")))
        shot("redoc")

        # /admin: log in, list the posts, create one and edit it.
        chrome.get(f"{server}/admin/blog-post/list")
        wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys(USER)
        chrome.find_element(By.NAME, "password").send_keys(PASSWORD)
        chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(ready.url_contains("/admin/"))
        chrome.get(f"{server}/admin/blog-post/list")
        wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "body"), "nanosecond"))
        shot("admin-posts")

        chrome.get(f"{server}/admin/blog-post/create")
        wait.until(ready.presence_of_element_located((By.NAME, "title"))).send_keys(
            "Written in the admin"
        )
        Select(chrome.find_element(By.NAME, "author")).select_by_index(1)
        shot("admin-create")
        chrome.find_element(By.CSS_SELECTOR, "[name=save]").click()
        wait.until(ready.url_contains("/admin/blog-post/list"))
        wait.until(
            ready.text_to_be_present_in_element((By.TAG_NAME, "body"), "Written in the admin")
        )

        # The new post is in the database the API serves; open it in the admin's edit form.
        created = httpx.get(f"{server}/posts", params={"title": "Written in the admin"}).json()
        assert created["total"] == 1, created
        chrome.get(f"{server}/admin/blog-post/edit/{created['items'][0]['id']}")
        title = wait.until(ready.presence_of_element_located((By.NAME, "title")))
        title.clear()
        title.send_keys("Edited in the admin")
        chrome.find_element(By.CSS_SELECTOR, "[name=save]").click()
        wait.until(ready.url_contains("/admin/blog-post/list"))
        wait.until(
            ready.text_to_be_present_in_element((By.TAG_NAME, "body"), "Edited in the admin")
        )
        shot("admin-edited")
    except Exception:
        shot("failure")
        raise
    finally:
        chrome.quit()
    # What the browser did is in the database the API serves.
    found = httpx.get(f"{server}/posts", params={"title": "Edited in the admin"}).json()
    assert found["total"] == 1
