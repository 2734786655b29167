"""Browser test: Playwright drives Debian's chromium (headless) against a live server.

Logs in, sees the role's home page, switches language, and at phone width (375 px) reaches every
menu item through the drawer.
"""

from __future__ import annotations

import shutil

import pytest

from kehu.accounts.roles import Role
from kehu.testing.factories import TEST_PASSWORD, UserFactory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def sign_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def test_login_home_language_and_phone_menu(browser, live_server, org, transactional_db):
    # A person with several roles, so the menu has several items to reach.
    user = UserFactory(username="multi", full_name="王多岗", unit=org.city_a, language="zh-hans",
                       roles=[Role.UNIT_HEAD, Role.MARKET_MANAGER])  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live_server.url, user.username)

    # The role's home page, in Simplified Chinese by default.
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("[data-panel=unit_head]").count() == 1
    assert "王多岗" in page.inner_text("header")

    # Switch to English: the page and the stored preference follow.
    page.click("[data-testid=switch-language]")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Sign out" in page.inner_text("header")
    user.refresh_from_db()
    assert user.language == "en"

    # Phone width: every menu item is reachable through the drawer.
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/")
    nav_keys = page.eval_on_selector_all(".mainnav [data-nav]", "els => els.map(e => e.dataset.nav)")
    assert {"home", "org", "people", "password", "logout"} <= set(nav_keys)
    assert not page.is_visible(".mainnav"), "the menu is a closed drawer on a phone"
    for key in [k for k in nav_keys if k not in ("logout",)]:
        page.goto(f"{live_server.url}/")
        page.click(".nav-toggle")
        link = page.locator(f".mainnav [data-nav={key}]")
        assert link.is_visible(), key
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, f"{key} is off screen"
        link.click()
        page.wait_for_load_state()
        assert page.locator("main").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375 + 1, (
            f"{key} page scrolls sideways"
        )
    # And sign out from the drawer.
    page.goto(f"{live_server.url}/")
    page.click(".nav-toggle")
    page.click(".mainnav [data-nav=logout]")
    page.wait_for_load_state()
    assert "/login/" in page.url
    context.close()
