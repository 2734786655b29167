"""Browser test of the customer pages at phone width (375 px): Playwright drives Debian's chromium.

A customer manager signs in, opens the customer list from the menu drawer, finds a customer by its
pinyin initials with the live search, opens it, switches tabs and adds a contact with a phone.
"""

from __future__ import annotations

import os
import shutil

import pytest

from kehu.audit.models import AuditEvent
from kehu.customers.models import Contact
from kehu.customers.personal import phone_add
from kehu.customers.services import customer_create
from kehu.testing.factories import TEST_PASSWORD

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
PHONE = {"width": 375, "height": 812}
# Set KEHU_SCREENSHOTS=/some/dir to keep what the phone showed at each step.
SHOTS = os.environ.get("KEHU_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1


def test_phone_search_by_initials_open_and_add_a_contact(browser, transactional_db, live_server, org, people,
                                                          settings, tmp_path):  # fmt: skip
    settings.MEDIA_ROOT = str(tmp_path)
    alice = people.alice
    sinopec = customer_create(acting_user=alice, name="中国石化销售有限公司", kind="institution",
                              owning_unit=org.a1, division_code="370102", tags=["重点"])  # fmt: skip
    phone_add(acting_user=alice, customer=sinopec, number="13812345678")
    other = customer_create(acting_user=alice, name="济南顺达物流有限公司", kind="institution",
                            owning_unit=org.a1, division_code="370102")  # fmt: skip

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", alice.username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()

    # The customer list is in the menu drawer.
    page.click(".nav-toggle")
    page.click(".mainnav [data-nav=customers]")
    page.wait_for_selector(f"tr[data-code='{other.code}']")
    assert page.locator("tr[data-code]").count() == 2
    assert no_sideways_scroll(page), "the list scrolls sideways on a phone"
    # Rows are cards on a phone: the table header is hidden, each cell carries its label.
    assert not page.is_visible("[data-testid=customer-table] thead")
    shot(page, "1-list")

    # Live search by pinyin initials: results replace themselves as one types, and the URL follows.
    page.locator("input[name=q]").press_sequentially("zgsh", delay=40)
    page.wait_for_selector(f"tr[data-code='{other.code}']", state="detached")
    assert page.locator("tr[data-code]").count() == 1
    assert "q=zgsh" in page.url
    shot(page, "2-search")

    # Open it: the header and the masked phone.
    page.click(f"tr[data-code='{sinopec.code}'] a")
    page.wait_for_selector("[data-testid=customer-header]")
    assert page.url.endswith(f"/customers/{sinopec.code}/")
    assert "138****5678" in page.inner_text("[data-testid=personal-data]")
    assert "13812345678" not in page.content()
    assert no_sideways_scroll(page), "the customer page scrolls sideways on a phone"
    shot(page, "3-customer")

    # Tabs swap in place (htmx) and each has its own address.
    page.click("nav.tabs a[data-tab=contacts]")
    page.wait_for_selector("[data-testid=tab-contacts]")
    assert page.url.endswith(f"/customers/{sinopec.code}/contacts/")
    assert page.locator("[data-testid=customer-header]").count() == 1

    # Add a contact with a phone.
    page.click("[data-testid=contact-add]")
    page.wait_for_selector("[data-testid=contact-form]")
    page.fill("input[name=name]", "李建国")
    page.fill("input[name=title]", "总经理")
    page.select_option("select[name=decision_role]", "decision_maker")
    page.fill("input[name=phone]", "139 0000 1111")
    assert no_sideways_scroll(page), "the contact form scrolls sideways on a phone"
    shot(page, "4-contact-form")
    page.click("[data-testid=contact-save]")
    page.wait_for_selector("[data-testid=tab-contacts] [data-testid=contact]")
    assert page.url.endswith(f"/customers/{sinopec.code}/contacts/")
    card = page.inner_text("[data-testid=contact]")
    assert "李建国" in card and "139****1111" in card and "13900001111" not in card
    assert no_sideways_scroll(page)
    shot(page, "5-contacts")

    contact = Contact.objects.get(customer=sinopec)
    assert (contact.name, contact.title, contact.decision_role) == ("李建国", "总经理", "decision_maker")
    assert AuditEvent.objects.filter(action="contact.create", object_id=str(contact.pk)).exists()
    context.close()


def test_every_customer_page_fits_a_phone(
    browser, transactional_db, live_server, org, people, settings, tmp_path
):
    from datetime import date

    from kehu.customers.services import agreement_create, contact_create

    settings.MEDIA_ROOT = str(tmp_path)
    alice = people.alice
    customer = customer_create(acting_user=alice, name="山东高速物流集团济南运输有限责任公司历下分公司",
                               kind="institution", owning_unit=org.a1, division_code="370102",
                               credit_code="91350100M000100Y43", tags=["重点", "物流", "高速"],
                               address="山东省济南市历下区经十路12345号高速大厦A座1801室")  # fmt: skip
    phone_add(acting_user=alice, customer=customer, number="0531-88886666", label="办公室")
    contact_create(acting_user=alice, customer=customer, name="欧阳建国", title="物流运营中心副总经理",
                   decision_role="decision_maker", preferences="喜欢喝茶，周末打网球" * 5)  # fmt: skip
    agreement_create(acting_user=alice, customer=customer, number="SDGS-GY-2024-000123", signing_level="city",
                     start_date=date(2024, 1, 1), parties="中国石化销售股份有限公司山东石油分公司；" * 3)  # fmt: skip
    from kehu.customers.services import customer_update

    customer_update(acting_user=alice, customer=customer, notes="年度框架协议续签中", status="active")

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", alice.username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    base = f"/customers/{customer.code}"
    pages = ["/customers/", "/customers/add/", f"{base}/edit/", f"{base}/merge/", f"{base}/contacts/add/",
             f"{base}/agreements/add/"]  # fmt: skip
    pages += [f"{base}/{tab}/" for tab in ("profile", "contacts", "agreements", "photos", "history", "sales")]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state()
        if path == "/customers/":
            page.click("details.filters > summary")
        assert page.locator("main").is_visible(), path
        assert no_sideways_scroll(page), f"{path} scrolls sideways on a phone"
        shot(page, "page" + path.replace("/", "-").rstrip("-"))
    context.close()
