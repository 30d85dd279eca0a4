"""The console in a real headless Chromium against a real service process: on a real
redis-server, and once on the embedded store. One browser serves every test of the module.

Each test opens a fresh page (the credentials live in the tab's memory only), and checks that
the page raised no Content-Security-Policy refusal: the console needs no inline code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_page import Api, ConsolePage, start_browser
from helpers import ADMIN_ID, ADMIN_SECRET, add_clients, client_entry
from redis_servers import RedisServer
from selenium import webdriver
from selenium.webdriver.common.by import By
from service_process import ServiceProcess

SUPPORT_ID, SUPPORT_SECRET = "web-support", "tkc_web-support-secret-0123456789"
XSS_USER = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


def _serve(workdir: Path, settings: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess(workdir, {"TOKENSTORE_CONSOLE": "1", **settings})
    # A client scoped to one app, without admin: what a support desk of "web" would hold.
    add_clients(
        workdir / "clients.json",
        client_entry(SUPPORT_ID, SUPPORT_SECRET, ["read", "revoke", "introspect"], ["web"]),
    )
    return process


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    redis_server.flush()
    workdir = tmp_path_factory.mktemp("console")
    with _serve(workdir, {"TOKENSTORE_REDIS_URL": redis_server.url}) as process:
        asyncio.run(process.wait_ready())
        yield process


@pytest.fixture
def page(browser: webdriver.Chrome, service: ServiceProcess) -> Iterator[ConsolePage]:
    console = ConsolePage(browser, service.url)
    yield console
    assert console.csp_violations() == []
    assert console.alert_text() is None


@pytest.fixture
def api(service: ServiceProcess) -> Api:
    return Api(service.url)


def test_sign_in_refuses_a_wrong_secret_and_keeps_nothing_in_storage(page: ConsolePage) -> None:
    page.sign_in(ADMIN_ID, "tkc_not-the-secret")
    assert page.wait_notice("Wrong client id or secret")
    page.signed_in(ADMIN_ID, ADMIN_SECRET)
    assert page.storage() == [0, 0, ""]  # no localStorage, sessionStorage or cookie
    assert page.driver.current_url == f"{page.base}/console/"  # the secret is in no URL
    assert ADMIN_SECRET not in page.driver.page_source  # nor in the page


def test_find_a_user_and_revoke_one_token(page: ConsolePage, api: Api) -> None:
    laptop = api.issue("carol", "web", device_name="laptop", client_name="Web")
    phone = api.issue("carol", "web", device_name="phone", client_name="Web")
    mobile = api.issue("carol", "mobile", device_name="phone")
    page.signed_in(ADMIN_ID, ADMIN_SECRET)
    page.find_user("carol")
    page.wait_rows({laptop["id"], phone["id"], mobile["id"]})
    devices = [h.text for h in page.all("section.device h3")]
    assert devices == ["phone · mobile", "phone · Web", "laptop · Web"]  # newest first

    page.row_button(phone["id"], "button.revoke-one").click()
    page.wait_rows({laptop["id"], mobile["id"]})
    assert not api.active(phone["token"])
    assert api.active(laptop["token"]) and api.active(mobile["token"])
    # The audit list names the revocation and who made it.
    events = page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#user-events tbody tr"), "event")
    assert ADMIN_ID in events[0].text and "token" in events[0].text
    page.screenshot("user")


def test_revoke_all_but_one_and_then_all(page: ConsolePage, api: Api) -> None:
    tokens = [api.issue("dana", "web", device_name=f"device {i}") for i in range(3)]
    page.signed_in(ADMIN_ID, ADMIN_SECRET)
    page.find_user("dana")
    page.wait_rows({t["id"] for t in tokens})
    page.row_button(tokens[1]["id"], "button.keep-only").click()
    assert "dana" in page.confirm()
    page.wait_rows({tokens[1]["id"]})
    assert [api.active(t["token"]) for t in tokens] == [False, True, False]

    page.click("#revoke-all")
    assert "dana" in page.confirm()
    page.wait(lambda d: page.token_rows() == [] and page.shown_text("token-count"), "no rows")
    assert not api.active(tokens[1]["token"])


def test_a_user_with_many_tokens_shows_the_newest_500(page: ConsolePage, api: Api) -> None:
    tokens = [api.issue("jack", "web", device_name=f"d{i % 7}") for i in range(501)]
    page.signed_in(ADMIN_ID, ADMIN_SECRET)
    page.find_user("jack")
    page.wait(lambda d: len(page.token_rows()) == 500, "500 rows")
    assert tokens[0]["id"] not in page.token_rows()  # the oldest is left out
    assert page.shown_text("token-count") == "501 live token(s) (the newest 500 shown)"


def test_revoke_every_token_of_an_app_seen_in_the_live_feed(page: ConsolePage, api: Api) -> None:
    tokens = [api.issue(f"shopper {i}", "shop") for i in range(55)]
    page.signed_in(ADMIN_ID, ADMIN_SECRET)
    page.tab("feed")
    page.wait(lambda d: page.shown_text("feed-state") == "live", "the feed")
    page.tab("app")
    page.type_into("app-id", "shop")
    page.click("#app-form button[type=submit]")
    page.wait(lambda d: len(page.token_rows()) == 50, "a page of 50")  # paged, never all
    first_page = set(page.token_rows())
    page.click("#next-page")
    page.wait(lambda d: len(page.token_rows()) == 5, "the last 5")
    assert first_page | set(page.token_rows()) == {t["id"] for t in tokens}

    page.click("#revoke-app")
    assert "shop" in page.by_id("confirm-title").text + page.by_id("confirm-text").text
    assert not page.by_id("confirm-go").is_enabled()  # until the app id is typed back
    page.type_into("confirm-typed", "shoq")
    assert not page.by_id("confirm-go").is_enabled()
    page.screenshot("app-confirm")
    page.confirm(typed="shop")
    page.wait_notice("Every token of shop")
    assert not any(api.active(t["token"]) for t in tokens)

    page.tab("feed")
    row = page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.event.app"), "the app event")
    assert "shop" in row[0].text and "every token created before" in row[0].text
    api.revoke(api.issue("erin", "web")["id"])  # and a live event after it
    page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.event.token"), "a token event")
    page.screenshot("feed")


def test_ids_are_shown_as_text_never_as_markup(page: ConsolePage, api: Api) -> None:
    device = "<script>alert(2)</script>"
    app = "<svg onload=alert(3)>"
    token = api.issue(XSS_USER, app, device_name=device, client_name='"><b>bold</b>')
    page.signed_in(ADMIN_ID, ADMIN_SECRET)
    page.tab("feed")
    page.wait(lambda d: page.shown_text("feed-state") == "live", "the feed")
    page.find_user(XSS_USER)
    page.wait_rows({token["id"]})
    assert page.shown_text("shown-user") == XSS_USER
    assert (
        page.all("section.device h3")[0].get_attribute("textContent") == f'{device} · "><b>bold</b>'
    )
    main = page.by_id("main")
    assert main.find_elements(By.CSS_SELECTOR, "img, svg, b, script") == []
    page.screenshot("xss")
    page.row_button(token["id"], "button.revoke-one").click()
    page.wait_rows(set())
    page.tab("feed")
    cell = page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.event td.user-id"), "event")
    assert cell[0].get_attribute("textContent") == XSS_USER
    assert page.by_id("main").find_elements(By.CSS_SELECTOR, "img, svg, b, script") == []
    assert page.alert_text() is None


def test_a_client_scoped_to_one_app_sees_nothing_of_another(page: ConsolePage, api: Api) -> None:
    web = api.issue("frank", "web", device_name="laptop")
    mobile = api.issue("frank", "mobile", device_name="phone")
    page.signed_in(SUPPORT_ID, SUPPORT_SECRET)
    page.tab("feed")
    page.wait(lambda d: page.shown_text("feed-state") == "live", "the feed")
    page.find_user("frank")
    page.wait_rows({web["id"]})
    page.tab("app")
    page.type_into("app-id", "mobile")
    page.click("#app-form button[type=submit]")
    page.wait(lambda d: page.shown_text("shown-app") == "mobile", "the app")
    assert page.token_rows() == []
    page.click("#revoke-app")
    page.confirm(typed="mobile")
    assert page.wait_notice("403 forbidden")
    assert api.active(mobile["token"])

    api.revoke(mobile["id"])  # not for this client's eyes
    api.revoke(web["id"])
    page.tab("feed")
    rows = page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.event.token"), "an event")
    page.driver.implicitly_wait(0)
    assert [r.find_element(By.CSS_SELECTOR, ".app-id").text for r in rows] == ["web"]


def test_your_devices_page_for_a_user_with_their_own_token(page: ConsolePage, api: Api) -> None:
    laptop, phone, tablet = (
        api.issue("gina", "web", device_name=d) for d in ("laptop", "phone", "tablet")
    )
    other = api.issue("hank", "web")
    page.open("/console/me")
    page.type_into("me-user", "hank")  # someone else's devices, with gina's token
    page.type_into("me-token", laptop["token"])
    page.click("#me-signin button[type=submit]")
    assert page.wait_notice("403 forbidden")

    page.open("/console/me")
    page.type_into("me-user", "gina")
    page.type_into("me-token", laptop["token"])
    page.click("#me-signin button[type=submit]")
    page.wait_rows({laptop["id"], phone["id"], tablet["id"]})
    assert page.row_button(laptop["id"], ".this-device").text == "this device"
    assert page.storage() == [0, 0, ""]
    page.screenshot("me")

    page.row_button(phone["id"], "button.revoke-one").click()
    page.wait_rows({laptop["id"], tablet["id"]})
    assert not api.active(phone["token"])
    page.click("#end-others")
    page.confirm()
    page.wait_rows({laptop["id"]})
    assert not api.active(tablet["token"]) and api.active(laptop["token"])
    page.row_button(laptop["id"], "button.revoke-one").click()  # "sign out here"
    page.wait_notice("Signed out on this device")
    assert page.by_id("me-token").get_attribute("value") == ""
    assert not api.active(laptop["token"]) and api.active(other["token"])


def test_the_console_on_the_embedded_store(browser: webdriver.Chrome, tmp_path: Path) -> None:
    with _serve(tmp_path, {}) as process:
        asyncio.run(process.wait_ready())
        page, api = ConsolePage(browser, process.url), Api(process.url)
        kept, revoked = api.issue("ivy", "web"), api.issue("ivy", "web")
        page.signed_in(ADMIN_ID, ADMIN_SECRET)
        page.find_user("ivy")
        page.wait_rows({kept["id"], revoked["id"]})
        page.row_button(revoked["id"], "button.revoke-one").click()
        page.wait_rows({kept["id"]})
        assert not api.active(revoked["token"]) and api.active(kept["token"])
        assert page.csp_violations() == []


def test_the_feed_parser_reads_events_split_anywhere(page: ConsolePage) -> None:
    """sse.js in the browser itself, fed a stream cut mid-field and mid-line (CRLF and LF)."""
    page.open()
    chunks = [
        "retry: 1000\n\nid: 1-0\nevent: to",
        'ken\ndata: {"a"',
        ":1}\r\n\r\n: heartbeat\n\nid: 2-0\n\n",  # a comment; an id alone moves the position
        "event: ready\nid: 3-0\ndata: x\ndata:y\n",
        "\n",
    ]
    result = page.driver.execute_async_script(
        """
        const [chunks, done] = arguments;
        const { messages } = await import("/console/js/sse.js");
        const body = new ReadableStream({ start(controller) {
            for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
            controller.close();
        } });
        const ids = [], seen = [];
        for await (const m of messages(body, (id) => ids.push(id))) seen.push([m.event, m.data]);
        done({ ids, seen });
        """,
        chunks,
    )
    assert result == {
        "ids": ["1-0", "2-0", "3-0"],
        "seen": [["token", '{"a":1}'], ["ready", "x\ny"]],
    }
