"""The console in real headless Chromium, against `hookline dev`.

Run by scripts/browser-test, which provides the browser, Playwright, axe-core and the binary
(HOOKLINE_BIN, HOOKLINE_CHROMIUM, HOOKLINE_AXE, HOOKLINE_BROWSER_OUT).

- the README walkthrough done entirely in the console: log in, create a destination, a source
  and a trigger, preview it (and see a broken template's line and column), send an event with
  curl to a broken receiver, watch the retries and the dead letter, fix the receiver, replay,
  see it delivered with the same webhook-id
- hostile payloads and headers are shown as text and nothing executes (with the page's CSP
  bypassed, so escaping alone is what is tested)
- a read-only login sees no write controls and its changes are refused
- axe-core finds no serious or critical violation on any page, at 1280x800 and 390x844, and
  every page is screenshotted at both sizes
"""

import http.server
import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

BIN = os.environ["HOOKLINE_BIN"]
CHROMIUM = os.environ["HOOKLINE_CHROMIUM"]
AXE = os.environ["HOOKLINE_AXE"]
OUT = Path(os.environ["HOOKLINE_BROWSER_OUT"])
SHOTS = OUT / "screenshots"

ADMIN = "dev-admin-token"
VIEWER = "viewer-token"
SIZES = [(1280, 800), (390, 844)]


class Receiver:
    """A webhook receiver on loopback that fails (503) or succeeds (200) as told."""

    def __init__(self):
        self.status = 503
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with receiver.lock:
                    status = receiver.status
                    receiver.requests.append(
                        {"status": status, "headers": dict(self.headers), "body": body}
                    )
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"received": true}' if status == 200 else b'{"busy": true}')

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orders"

    def delivered(self):
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]


@pytest.fixture(scope="module")
def dev():
    """`hookline dev` on free loopback ports: its ingest and control base URLs."""
    log = open(OUT / "hookline-dev.log", "w")
    process = subprocess.Popen(
        [
            BIN, "dev",
            "--ingest-addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0",
            "--admin-addr", "127.0.0.1:0", "--echo-addr", "127.0.0.1:0",
            "--control-read-token", VIEWER,
        ],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    ready = None
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        ready = re.search(r"ingest (http://\S+), control (http://[^\s,]+)", line)
        if ready:
            break
    if not ready:
        process.kill()
        raise RuntimeError("hookline dev did not get ready:\n" + "".join(lines))
    # Keep reading its stdout so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    yield {"ingest": ready.group(1), "control": ready.group(2)}
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def api(dev, method, path, body=None, token=ADMIN):
    """A call to the control API, as a script would make it."""
    request = urllib.request.Request(
        dev["control"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def new_page(browser, errors, bypass_csp=False, size=SIZES[0]):
    """A page in a new context; alerts and prompts (what injected script would show) and page
    errors are collected in `errors`; the console's own confirmations are accepted."""
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]}, bypass_csp=bypass_csp
    )
    page = context.new_page()

    def on_dialog(dialog):
        if dialog.type != "confirm":
            errors.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    return page


def log_in(page, dev, token):
    page.goto(dev["control"] + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("Control token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()


def shot(page, name):
    size = page.viewport_size
    page.screenshot(path=SHOTS / f"{name}-{size['width']}x{size['height']}.png", full_page=True)


def wait_for(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_walkthrough_in_the_console(dev, browser):
    receiver = Receiver()
    errors = []
    page = new_page(browser, errors)
    log_in(page, dev, ADMIN)
    shot(page, "01-overview")

    # A destination, with a short retry schedule set by editing it as JSON.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Destinations").click()
    page.get_by_role("link", name="New destination").click()
    page.get_by_label("Name").fill("Order receiver")
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Id").fill("orders-receiver")
    page.get_by_role("button", name="Create destination").click()
    expect(page.get_by_role("heading", name="Order receiver")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Created.")
    page.get_by_role("link", name="Edit as JSON").click()
    fields = json.loads(page.locator("#code").input_value())
    fields["retry"] = {"type": "schedule", "waits_seconds": [0.2, 0.2], "jitter": False}
    fields["secrets"] = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    page.locator("#code").fill(json.dumps(fields, indent=2))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    status, view = api(dev, "GET", "/api/v1/destinations/orders-receiver")
    assert status == 200 and view["retry"]["waits_seconds"] == [0.2, 0.2], view
    assert view["secrets"] and view["secrets"][0] != fields["secrets"][0], "masked: {view}"

    # A source: its URL and token shown once.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sources").click()
    page.get_by_role("link", name="New source").click()
    page.get_by_label("Name").fill("Shop")
    page.get_by_label("Id").fill("shop")
    page.get_by_role("button", name="Create source").click()
    expect(page.get_by_role("heading", name="Source created: Shop")).to_be_visible()
    token = page.locator("#token").inner_text()
    url = page.locator("#ingest-url").inner_text()
    assert token.startswith("hl_") and url == dev["ingest"] + "/inbound-webhooks/shop"
    shot(page, "02-source-created")

    # A trigger, previewed live as it is typed; a broken template shows where it broke.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Triggers").click()
    page.get_by_role("link", name="New trigger").click()
    order = {"type": "order.created", "order": {"id": "A-1", "total": 42}}
    trigger = {
        "id": "orders",
        "name": "New orders to the receiver",
        "when": {"sources": ["shop"]},
        "if": 'payload.type == "order.created"',
        "actions": [{
            "destination": "orders-receiver",
            "body": '{"order": {{ payload.order.id }}, "total": {{ payload.order.total }}}',
        }],
    }
    page.locator("#sample").fill(json.dumps({"payload": order}))
    broken = json.loads(json.dumps(trigger))
    broken["actions"][0]["body"] = '{"order": {{ payload.nothing.id }}}'
    page.locator("#code").fill(json.dumps(broken, indent=2))
    preview = page.locator("#preview")
    expect(preview).to_contain_text("line 1, column")
    expect(preview).to_contain_text("payload.nothing")
    page.locator("#code").fill(json.dumps(trigger, indent=2))
    expect(preview).to_contain_text("fires")
    expect(preview).to_contain_text('\\"order\\": \\"A-1\\", \\"total\\": 42')
    shot(page, "03-trigger-preview")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.get_by_role("status")).to_have_text("Created.")

    # An event sent with curl, to a receiver that fails: retries, then a dead letter.
    sent = subprocess.run(
        ["curl", "-sS", "-X", "POST", url, "-H", f"Authorization: Bearer {token}",
         "-H", "Content-Type: application/json", "-d", json.dumps(order)],
        check=True, capture_output=True, text=True,
    )
    event_id = json.loads(sent.stdout)["id"]
    page.goto(dev["control"] + "/ui/destinations/orders-receiver")

    def dead_attempt_shown():
        page.reload()
        return page.locator("tbody tr", has_text="dead").count() > 0

    wait_for("the dead attempt on the destination's page", dead_attempt_shown)
    expect(page.locator("tbody tr", has_text="retrying")).to_have_count(2)
    shot(page, "04-destination-attempts")
    assert len(receiver.requests) == 3 and not receiver.delivered()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters").click()
    row = page.locator("tbody tr", has_text=event_id)
    expect(row).to_contain_text("exhausted")
    expect(row).to_contain_text("open")
    shot(page, "05-dead-letters")

    # Fixed: the dead letter replayed from the console is delivered, with the same webhook-id.
    receiver.status = 200
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Replay selected").click()
    expect(page.get_by_role("heading", name="Replayed")).to_be_visible()
    delivered = wait_for("the replayed delivery", receiver.delivered)
    assert json.loads(delivered[0]["body"]) == {"order": "A-1", "total": 42}
    assert delivered[0]["headers"]["webhook-id"] == receiver.requests[0]["headers"]["webhook-id"]

    def delivered_shown():
        page.goto(f"{dev['control']}/ui/dead-letters")
        return "delivered" in page.locator("tbody tr", has_text=event_id).inner_text()

    wait_for("the letter shown as delivered", delivered_shown)
    page.goto(f"{dev['control']}/ui/events/{event_id}")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("Received")
    expect(timeline).to_contain_text("orders-receiver")
    expect(timeline.locator("li", has_text="Delivery").first).to_contain_text("delivered")
    shot(page, "06-event-timeline")
    # The overview names the destination that hurt: 3 of its 4 attempts failed.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    expect(page.locator("tr", has_text="Order receiver")).to_contain_text("75.0%")
    assert not errors, errors


def test_hostile_payloads_and_headers_are_shown_as_text(dev, browser):
    marks = {
        "script": "<script>window.__xss = 1</script>",
        "attribute": '"><img src=x onerror="window.__xss = 2">',
        "link": "javascript:window.__xss = 3",
    }
    body = dict(marks, ref="refs/heads/main", pusher={"name": marks["script"]},
                repository={"full_name": marks["attribute"]}, commits=[])
    request = urllib.request.Request(
        dev["ingest"] + "/inbound-webhooks/github", method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer dev-token", "Content-Type": "application/json",
                 "X-GitHub-Event": '<img src=x onerror="window.__xss = 4">'},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        event_id = json.loads(answer.read())["id"]
    wait_for("the event in the store",
             lambda: api(dev, "GET", f"/api/v1/events/{event_id}")[0] == 200)
    errors = []
    # The page's CSP would stop inline script anyway: without it, escaping alone must hold.
    page = new_page(browser, errors, bypass_csp=True)
    log_in(page, dev, ADMIN)
    for path in [f"/ui/events/{event_id}", "/ui/sources/github", "/ui/events?source=github",
                 "/ui/triggers/push-to-chat", "/ui/dead-letters"]:
        page.goto(dev["control"] + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("img[src=x]").count() == 0, path
        assert page.locator("a[href^='javascript']").count() == 0, path
    page.goto(f"{dev['control']}/ui/events/{event_id}")
    expect(page.locator("pre.json")).to_contain_text(marks["script"])
    expect(page.locator("dl.fields")).to_contain_text('<img src=x onerror="window.__xss = 4">')
    # The trigger editor's sample is that event; its live preview renders it as text too.
    page.goto(dev["control"] + "/ui/triggers/push-to-chat")
    expect(page.locator("#sample")).to_have_value(re.compile(re.escape(marks["script"])))
    code = json.loads(page.locator("#code").input_value())
    # A template that does not compile: the problem, at its place, as text.
    code["actions"][0]["body"] = '{"a": {{ payload.attribute '
    page.locator("#code").fill(json.dumps(code))
    expect(page.locator("#preview")).to_contain_text("actions[0].body")
    code["actions"][0]["body"] = (
        '{"a": {{ payload.attribute }}, "s": {{ payload.script }}, "l": {{ payload.link }}}'
    )
    page.locator("#code").fill(json.dumps(code))
    expect(page.locator("#preview")).to_contain_text("window.__xss = 2")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#preview img").count() == 0
    shot(page, "07-hostile-preview")
    # And the real pages carry the policy.
    response = page.goto(dev["control"] + f"/ui/events/{event_id}")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert not errors, errors


def test_a_read_only_login_sees_no_write_controls_and_cannot_write(dev, browser):
    errors = []
    page = new_page(browser, errors)
    log_in(page, dev, VIEWER)
    expect(page.locator(".who")).to_have_text("read-only")
    page.goto(dev["control"] + "/ui/destinations/echo")
    expect(page.get_by_role("heading", name="Echo receiver of hookline dev")).to_be_visible()
    for name in ["Pause", "Disable", "Delete", "Send test webhook"]:
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    page.goto(dev["control"] + "/ui/sources")
    expect(page.get_by_role("link", name="New source")).to_have_count(0)
    # A forged change with the session's own form token is still refused.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(dev["control"] + "/ui/destinations/echo/pause",
                               form={"csrf": csrf}, max_redirects=0)
    assert answer.status == 403, answer.status
    status, view = api(dev, "GET", "/api/v1/destinations/echo")
    assert status == 200 and not view.get("paused", False), view
    shot(page, "08-read-only")
    assert not errors, errors


def test_every_page_passes_axe_and_is_usable_by_keyboard(dev, browser):
    axe = Path(AXE).read_text()
    pages = {
        "login": "/ui/login",
        "overview": "/ui/",
        "sources": "/ui/sources",
        "source": "/ui/sources/github",
        "source-new": "/ui/sources/new",
        "destinations": "/ui/destinations",
        "destination": "/ui/destinations/echo",
        "destination-new": "/ui/destinations/new",
        "triggers": "/ui/triggers",
        "trigger": "/ui/triggers/push-to-chat",
        "events": "/ui/events?source=github",
        "dead-letters": "/ui/dead-letters",
        "edit": "/ui/edit/destinations/echo",
    }
    serious = []
    for size in SIZES:
        errors = []
        page = new_page(browser, errors, bypass_csp=True, size=size)
        page.goto(dev["control"] + "/ui/login")
        page.add_script_tag(content=axe)
        found = page.evaluate("async () => (await axe.run(document)).violations")
        serious += [("login", v["id"], v["help"]) for v in found
                    if v["impact"] in ("serious", "critical")]
        shot(page, "login")
        log_in(page, dev, ADMIN)
        # The first Tab reaches the skip link, which moves focus to the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        for name, path in pages.items():
            if name == "login":
                continue
            page.goto(dev["control"] + path)
            page.add_script_tag(content=axe)
            found = page.evaluate("async () => (await axe.run(document)).violations")
            for violation in found:
                if violation["impact"] in ("serious", "critical"):
                    targets = [node["target"] for node in violation["nodes"]][:3]
                    serious.append((f"{name} {size}", violation["id"], violation["help"], targets))
            # Nothing wider than the viewport but the tables' own scrolling areas.
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {size} is {overflow}px wider than the window"
            shot(page, name)
        assert not errors, errors
    assert not serious, "\n".join(map(str, serious))
