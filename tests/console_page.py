"""The console driven through a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``; nothing is downloaded at run time), and the API called beside it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
from helpers import ADMIN_HEADERS
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 10.0
# Set to a directory (docs/console) to save the screenshots shown in the README.
SCREENSHOTS_ENV = "TOKENSTORE_CONSOLE_SCREENSHOTS"
T = TypeVar("T")


def start_browser() -> webdriver.Chrome:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert os.access(binary, os.X_OK), f"{binary} missing: `scripts/dev test` installs it"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        "--window-size=1280,960", "--no-first-run", "--disable-extensions",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class ConsolePage:
    """One browser tab on a console served at ``base``."""

    def __init__(self, driver: webdriver.Chrome, base: str) -> None:
        self.driver = driver
        self.base = base
        self.violations: list[str] = []
        self.driver.get_log("browser")  # what earlier tests left

    def open(self, path: str = "/console/") -> None:
        self.violations += self._csp_messages()  # of the page before, on any test's tab
        self.driver.get(self.base + path)

    def wait(self, condition: Callable[[webdriver.Chrome], T], what: str) -> T:
        # The page re-renders a list after each action: an element may go stale under us.
        waiting = WebDriverWait(
            self.driver, WAIT, ignored_exceptions=[StaleElementReferenceException]
        )
        result: T = waiting.until(condition, f"waiting for {what}")
        return result

    def by_id(self, element_id: str) -> WebElement:
        return self.wait(lambda d: d.find_element(By.ID, element_id), f"#{element_id}")

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def type_into(self, element_id: str, text: str) -> None:
        field = self.by_id(element_id)
        field.clear()
        field.send_keys(text)

    def click(self, css: str) -> None:
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), css).click()

    def notice(self) -> str:
        return self.by_id("notice").text

    def wait_notice(self, contains: str) -> str:
        def notice(driver: webdriver.Chrome) -> str | None:
            text: str = driver.find_element(By.ID, "notice").text
            return text if contains in text else None

        found = self.wait(notice, f"notice {contains!r}")  # never None: None keeps it waiting
        assert found is not None
        return found

    def sign_in(self, client_id: str, secret: str) -> None:
        self.open()
        self.type_into("client-id", client_id)
        self.type_into("client-secret", secret)
        self.click("#signin button[type=submit]")

    def signed_in(self, client_id: str, secret: str) -> None:
        self.sign_in(client_id, secret)
        assert self.by_id("signed-in-as").text == client_id

    def tab(self, name: str) -> None:
        self.click(f"#tab-{name}")

    def find_user(self, user_id: str) -> None:
        self.tab("user")
        self.type_into("user-id", user_id)
        self.click("#user-form button[type=submit]")
        self.wait(lambda d: self.shown_text("shown-user") == user_id, f"user {user_id!r}")

    def shown_text(self, element_id: str) -> str | None:
        found = self.driver.find_elements(By.ID, element_id)
        return found[0].get_attribute("textContent") if found else None

    def token_rows(self) -> list[str]:
        """Ids of the tokens listed in the view on display (``data-token-id`` of each row)."""
        ids: list[str] = self.driver.execute_script(
            "return [...document.querySelectorAll('tr[data-token-id]')]"
            ".filter(r => r.offsetParent !== null).map(r => r.dataset.tokenId)"
        )
        return ids

    def wait_rows(self, expected: set[str]) -> None:
        self.wait(lambda d: set(self.token_rows()) == expected, f"rows {expected}")

    def row_button(self, token_id: str, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'tr[data-token-id="{token_id}"] {css}')

    def confirm(self, typed: str | None = None) -> str:
        """Confirms the open dialog (typing ``typed`` first); its text."""
        text = self.by_id("confirm-text").text
        if typed is not None:
            self.type_into("confirm-typed", typed)
        self.click("#confirm-go")
        self.wait(lambda d: not d.find_elements(By.ID, "confirm"), "the dialog to close")
        return text

    def alert_text(self) -> str | None:
        try:
            return self.driver.switch_to.alert.text
        except NoAlertPresentException:
            return None

    def csp_violations(self) -> list[str]:
        """Console messages about a Content-Security-Policy refusal, on every page opened."""
        self.violations += self._csp_messages()
        return self.violations

    def _csp_messages(self) -> list[str]:
        log = self.driver.get_log("browser")
        return [e["message"] for e in log if "Content Security" in e["message"]]

    def storage(self) -> Any:
        return self.driver.execute_script(
            "return [localStorage.length, sessionStorage.length, document.cookie]"
        )

    def screenshot(self, name: str) -> None:
        directory = os.environ.get(SCREENSHOTS_ENV)
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            assert self.driver.save_screenshot(str(Path(directory) / f"{name}.png"))


class Api:
    """The service's API, called directly (as the admin client unless told otherwise)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def issue(self, user_id: str, app_id: str, **extra: Any) -> Any:
        body = {"user_id": user_id, "app_id": app_id, **extra}
        response = self.session.post(f"{self.base}/v1/tokens", json=body, headers=ADMIN_HEADERS)
        assert response.status_code == 201, response.text
        return response.json()

    def active(self, token: str) -> bool:
        response = self.session.post(
            f"{self.base}/v1/introspect", json={"token": token}, headers=ADMIN_HEADERS
        )
        assert response.status_code == 200, response.text
        active: bool = response.json()["active"]
        return active

    def revoke(self, token_id: str) -> None:
        response = self.session.delete(f"{self.base}/v1/tokens/{token_id}", headers=ADMIN_HEADERS)
        assert response.status_code == 200, response.text
