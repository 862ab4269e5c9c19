"""The web console of `moss serve` (issue 15, items 2 and 3).

Everything runs against a real `moss serve` subprocess over a file store holding an index built
with the real model. The HTTP tests check the security rules one by one (cookie flags, wrong
keys, cross-origin forms, project isolation, escaping); the browser tests drive a real headless
Chromium (tests/browser.py installs it when missing) through Playwright, as a person would, and
save a screenshot of each page under ``build/console-screenshots`` (``MOSS_CONSOLE_README_SHOT=1``
also refreshes ``docs/console.png``, the README's picture).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from browser import CHROMIUM_ARGS, chromium_path
from moss import DocumentInfo, MossClient
from service import Server, free_port, moss_command, worker_env

pytestmark = [pytest.mark.model, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "build" / "console-screenshots"
README_SHOT = REPO / "docs" / "console.png"
#: Untrusted content: must come back as text, never as markup.
HOSTILE_TEXT = "<script>document.title='pwned'</script> hostile note"
HOSTILE_KEY = "<img src=x onerror=alert(1)>"
TOPICS = ("billing", "shipping", "account")


@dataclass
class Site:
    server: Server
    acme_key: str
    rival_key: str
    acme_key_id: str

    @property
    def console(self) -> str:
        return f"{self.server.url}/console"


def _faq_docs() -> list[DocumentInfo]:
    docs = [
        DocumentInfo(
            id=f"note-{i:02d}",
            text=f"Support note {i} about {TOPICS[i % 3]}: routine question number {i}.",
            metadata={"topic": TOPICS[i % 3], "n": i},
        )
        for i in range(42)
    ]
    docs.append(
        DocumentInfo(
            id="refunds",
            text="Refund policy: customers get their money back within 30 days of purchase.",
            metadata={"topic": "billing", "n": 100},
        )
    )
    docs.append(DocumentInfo(id="hostile", text=HOSTILE_TEXT, metadata={HOSTILE_KEY: "x"}))
    return docs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("console")
    server = Server(root, env={"MOSS_HOME": str(root / "home")})
    acme = server.moss("projects", "create", "acme")
    acme_key = next(line.split()[1] for line in acme.splitlines() if line.startswith("key:"))
    acme_key_id = next(line.split()[2] for line in acme.splitlines() if line.startswith("key id:"))
    rival_key = server.create_project("rival")
    with MossClient("acme", store=server.store_url, cache_dir=root / "cache") as client:
        session = client.sync.session("faq")
        session.add_docs(_faq_docs()[:10])
        session.push_index()
        session.add_docs(_faq_docs()[10:])
        session.push_index()
    with MossClient("rival", store=server.store_url, cache_dir=root / "cache") as client:
        session = client.sync.session("rival-secrets")
        session.add_docs([DocumentInfo(id="r1", text="the rival's private plans")])
        session.push_index()
    with server:
        yield Site(server, acme_key, rival_key, acme_key_id)
    # The key is never written to the server's log (access lines carry paths only).
    assert acme_key not in server.log.read_text()


@contextlib.contextmanager
def _login(site: Site, project: str, key: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the console (it keeps the cookie like a browser)."""
    with httpx.Client(base_url=site.console) as client:
        answer = client.post("/login", data={"project": project, "key": key})
        assert answer.status_code == 303, answer.text
        yield client


# -- HTTP: the rules, one by one -------------------------------------------------------------


def test_login_sets_an_httponly_strict_cookie_scoped_to_the_console(site: Site) -> None:
    answer = httpx.post(f"{site.console}/login", data={"project": "acme", "key": site.acme_key})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; over https the flag is set
    assert site.acme_key not in answer.headers["location"]


def test_a_wrong_key_sees_nothing_and_is_told_why(site: Site) -> None:
    answer = httpx.post(f"{site.console}/login", data={"project": "acme", "key": "not-the-key"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "Wrong project id or key" in answer.text
    assert "faq" not in answer.text
    # A forged cookie is no better than none: back to the login page.
    forged = httpx.get(f"{site.console}/", cookies={"moss_console": "YWNtZQ.bm9wZQ"})
    assert forged.status_code == 303 and forged.headers["location"] == "/console/login"


def test_cross_origin_forms_are_refused(site: Site) -> None:
    evil = {"origin": "http://evil.example"}
    login = httpx.post(
        f"{site.console}/login", data={"project": "acme", "key": site.acme_key}, headers=evil
    )
    assert login.status_code == 403 and "set-cookie" not in login.headers
    with _login(site, "acme", site.acme_key) as client:
        query = client.post("/indexes/faq/query", data={"text": "refund"}, headers=evil)
        assert query.status_code == 403
        same = client.post(
            "/indexes/faq/query", data={"text": "refund"}, headers={"origin": site.server.url}
        )
        assert same.status_code == 200


def test_a_key_of_another_project_cannot_open_the_index(site: Site) -> None:
    with _login(site, "rival", site.rival_key) as client:
        listing = client.get("/")
        assert "rival-secrets" in listing.text and "faq" not in listing.text
        for path in ("/indexes/faq", "/indexes/faq?page=2"):
            page = client.get(path)
            assert page.status_code == 404, path
            assert "Refund policy" not in page.text
        query = client.post("/indexes/faq/query", data={"text": "refund"})
        assert query.status_code == 404 and "Refund policy" not in query.text


def test_document_texts_and_metadata_are_escaped(site: Site) -> None:
    with _login(site, "acme", site.acme_key) as client:
        page = client.get("/indexes/faq", params={"filter": json.dumps({HOSTILE_KEY: "x"})})
        assert page.status_code == 200, page.text
        assert "hostile note" in page.text
        assert "<script>" not in page.text and "<img" not in page.text
        assert "&lt;script&gt;" in page.text and "&lt;img src=x" in page.text
        assert "script-src" not in page.headers["content-security-policy"]  # no script at all


def test_bad_filters_and_query_options_get_clear_messages(site: Site) -> None:
    with _login(site, "acme", site.acme_key) as client:
        page = client.get("/indexes/faq", params={"filter": "{topic: billing}"})
        assert page.status_code == 400 and "not valid JSON" in page.text
        query = client.post("/indexes/faq/query", data={"text": "refund", "alpha": "7"})
        assert query.status_code == 400 and "alpha must be from 0" in query.text


def test_a_revoked_key_stops_working_at_once(site: Site, tmp_path: Path) -> None:
    key = site.server.moss("keys", "create", "--project", "acme", "--label", "to revoke")
    secret = next(line.split()[1] for line in key.splitlines() if line.startswith("key:"))
    key_id = next(line.split()[2] for line in key.splitlines() if line.startswith("key id:"))
    with _login(site, "acme", secret) as client:
        assert client.get("/").status_code == 200
        site.server.moss("keys", "revoke", key_id, "--project", "acme")
        again = client.get("/")
        assert again.status_code == 303 and again.headers["location"] == "/console/login"


def test_no_console_flag_turns_it_off(tmp_path: Path) -> None:
    port = free_port()
    store = (tmp_path / "store").as_uri()
    command = moss_command("serve", "--store", store, "--port", str(port), "--no-console")
    with open(tmp_path / "log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=worker_env())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/console/").status_code == 404
    finally:
        process.terminate()
        process.wait(10)


# -- a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    executable = chromium_path()  # installs Debian's chromium when missing
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_browser_logs_in_browses_and_queries(site: Site, chromium: Browser) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    console = site.console

    page.goto(f"{console}/")
    assert page.url == f"{console}/login"
    _shoot(page, "01-login")

    page.fill("#project-input", "acme")
    page.fill("#key-input", "a-wrong-key")
    page.click("#login")
    assert "Wrong project id or key" in page.inner_text("#error")
    assert page.locator("#indexes").count() == 0
    _shoot(page, "02-wrong-key")

    page.fill("#key-input", site.acme_key)
    page.click("#login")
    page.wait_for_selector("#indexes")
    row = page.inner_text("#indexes tbody tr")
    assert "faq" in row and "44" in row and "moss-minilm" in row
    (cookie,) = [c for c in context.cookies() if c["name"] == "moss_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read the key
    _shoot(page, "03-indexes")

    page.click("text=faq")
    page.wait_for_selector("#documents")
    assert page.locator("#versions tbody tr").count() == 2
    assert page.locator("#documents tbody tr").count() == 20
    assert "44 documents" in page.inner_text("#doc-count")
    assert page.title() != "pwned"  # the hostile document's script never ran
    _shoot(page, "04-index")
    page.click("#next-page")
    assert "page 2 of 3" in page.inner_text("#doc-count")
    page.fill("#filter-input", '{"topic": "billing"}')
    page.click("#apply-filter")
    assert "15 documents match the filter" in page.inner_text("#doc-count")
    assert "billing" in page.inner_text("#documents tbody tr:first-child")
    _shoot(page, "05-documents-filtered")

    page.click("#open-query")
    page.fill("#text-input", "how do I get my money back?")
    page.fill("#top-k-input", "5")
    page.click("#run-query")
    page.wait_for_selector("#results")
    first = page.locator("#results tbody tr").first
    assert first.locator("td.id").inner_text() == "refunds"
    assert " ms" in page.inner_text("#timing")
    _shoot(page, "06-query")
    if os.environ.get("MOSS_CONSOLE_README_SHOT") == "1":
        page.screenshot(path=str(README_SHOT), full_page=True)

    page.click("#logout")
    assert page.url == f"{console}/login"
    page.goto(f"{console}/indexes/faq")
    assert page.url == f"{console}/login"  # logged out: nothing without logging in again
    assert visited and not any(site.acme_key in url for url in visited)
    context.close()


def test_browser_with_another_projects_key_cannot_open_the_index(
    site: Site, chromium: Browser
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{site.console}/login")
    page.fill("#project-input", "rival")
    page.fill("#key-input", site.rival_key)
    page.click("#login")
    page.wait_for_selector("#indexes")
    assert "faq" not in page.inner_text("#indexes")
    answer = page.goto(f"{site.console}/indexes/faq")
    assert answer is not None and answer.status == 404
    assert "does not exist in project 'rival'" in page.inner_text("#error")
    assert "Refund policy" not in page.content()
    _shoot(page, "07-other-project")
    context.close()


def test_version_history_shows_author_and_message_only_when_some_version_has_them() -> None:
    from moss.console.views import history_columns
    from moss.types import IndexInfo

    def version(number: int, **fields: str) -> IndexInfo:
        return IndexInfo("faq", number, "moss-minilm", 384, 1, 10, 0.0, **fields)  # type: ignore[arg-type]

    assert history_columns([version(1), version(2)]) == []
    assert history_columns([version(1), version(2, author="ana")]) == ["author"]
    assert history_columns([version(1, message="fix"), version(2, author="ana")]) == [
        "author",
        "message",
    ]
    assert history_columns([version(1), version(2, kind="delta", author="ana")]) == [
        "kind",
        "author",
    ]
    # Recorded in the header fields, not in ``extra`` (which the stores never fill).
    assert history_columns([version(1, extra={"author": "ana"})]) == []  # type: ignore[arg-type]
