"""``report.html`` in a real browser: headless Chromium (Debian's ``chromium``) over the DevTools protocol.

Chromium runs with ``--remote-debugging-pipe`` (CDP messages, NUL-separated JSON,
on file descriptors 3 and 4 — no websocket, no extra Python package). The test
records every console message, uncaught exception, browser log entry and network
request while the page loads, then asks the page how many charts it has and how
many actually drew a line of non-zero size.

It fails, with the reason, when ``/usr/bin/chromium`` is missing (the harness
installs it: ``apt-get install -y chromium``). ``REPORT_SCREENSHOT=/path.png``
keeps a full-page screenshot for a human to look at.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sentinel" / "data" / "sample.jsonl.gz"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1400,2000",
    "--remote-debugging-pipe",
)


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved to fds >= 10, so the shell's ``3<&A 4>&B`` cannot clobber one with the other."""
    out = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return out[0], out[1]


class Browser:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._to_r, self._to_w = _high(os.pipe())  # we write, Chromium reads (its fd 3)
        self._from_r, self._from_w = _high(os.pipe())  # Chromium writes (its fd 4), we read
        # bash (dash refuses fds > 9) puts our pipe ends on fds 3 and 4, then becomes Chromium
        cmd = [
            "bash",
            "-c",
            f'exec "$0" "$@" 3<&{self._to_r} 4>&{self._from_w}',
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.stderr_path = profile.parent / f"{profile.name}.stderr"  # Chromium's own log, for diagnosis
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                pass_fds=(self._to_r, self._from_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        os.close(self._to_r)
        os.close(self._from_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        with open(self._from_r, "rb", buffering=0) as f:
            while chunk := f.read(65536):
                buf += chunk
                *msgs, buf = buf.split(b"\0")
                for raw in msgs:
                    msg = json.loads(raw)
                    if "id" in msg:
                        with self._cond:
                            self._replies[msg["id"]] = msg
                            self._cond.notify_all()
                    else:
                        self.events.put(msg)
        with self._cond:
            self._cond.notify_all()

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        self._next_id += 1
        mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise TimeoutError(
                        f"no reply to {method} within {timeout}s (chromium exit {self.proc.poll()}); "
                        f"chromium stderr: {self.stderr_path.read_text(errors='replace')[-2000:]}"
                    )
                self._cond.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._to_w)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class PageResult:
    def __init__(self) -> None:
        self.console: list[str] = []  # console.error / warn / assert
        self.exceptions: list[str] = []
        self.log: list[str] = []  # browser log entries (failed loads, CSP, …)
        self.requests: list[str] = []  # every URL the page requested
        self.value: Any = None
        self.screenshot: bytes | None = None

    @property
    def problems(self) -> list[str]:
        external = [u for u in self.requests if not u.startswith(("file:", "data:", "about:"))]
        return (
            [f"console: {m}" for m in self.console]
            + [f"uncaught: {m}" for m in self.exceptions]
            + [f"log: {m}" for m in self.log]
            + [f"network request: {u}" for u in external]
        )


def open_page(
    url: str, expression: str, profile: Path, *, screenshot: bool = False, timeout: float = 60.0
) -> PageResult:
    """Load ``url``, collect its console/errors/requests, then evaluate ``expression`` (returns JSON)."""
    br = Browser(profile)
    res = PageResult()
    try:
        target = br.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = br.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            br.send(f"{domain}.enable", session=sid)
        br.send("Page.navigate", {"url": url}, session=sid)
        deadline = time.monotonic() + timeout
        loaded = False
        while not loaded:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{url} did not finish loading within {timeout}s")
            ev = br.events.get(timeout=left)
            _record(ev, res)
            loaded = ev.get("method") == "Page.loadEventFired"
        time.sleep(0.3)  # late console messages / errors, if any
        while not br.events.empty():
            _record(br.events.get_nowait(), res)
        out = br.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=sid)
        if "exceptionDetails" in out:
            raise RuntimeError(f"evaluation failed: {out['exceptionDetails']}")
        res.value = json.loads(out["result"]["value"])
        if screenshot:
            shot = br.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=sid)
            res.screenshot = base64.b64decode(shot["data"])
        while not br.events.empty():
            _record(br.events.get_nowait(), res)
    finally:
        br.close()
    return res


def _record(ev: dict[str, Any], res: PageResult) -> None:
    method, p = ev.get("method"), ev.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
        text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
        res.console.append(f"{p['type']}: {text}")
    elif method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        res.exceptions.append(str(d.get("exception", {}).get("description") or d.get("text")))
    elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
        e = p["entry"]
        res.log.append(f"{e.get('level')} {e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
    elif method == "Network.requestWillBeSent":
        res.requests.append(str(p.get("request", {}).get("url", "")))


# What the test asks the page, independently of the page's own check.
PROBE = """JSON.stringify((function () {
  var charts = Array.prototype.slice.call(document.querySelectorAll("svg.chart"));
  var drawn = charts.filter(function (svg) {
    var r = svg.getBoundingClientRect();
    if (r.width < 200 || r.height < 50) { return false; }
    var paths = Array.prototype.slice.call(svg.querySelectorAll("path.line"));
    return paths.some(function (p) {
      var b = p.getBoundingClientRect();
      return (p.getAttribute("d") || "").length > 10 && p.getTotalLength() > 0 && b.width > 0;
    });
  });
  return {
    charts: charts.length,
    drawn: drawn.length,
    markers: document.querySelectorAll("svg.chart g.anomaly circle").length,
    expected: +document.body.getAttribute("data-expected"),
    page_check: +document.body.getAttribute("data-rendered"),
    page_charts: +document.body.getAttribute("data-charts"),
    scripts_with_src: document.querySelectorAll("script[src], link[href], img[src], iframe").length,
    title: document.title
  };
})())"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's Chromium — "
            "`apt-get install -y chromium` (scripts/services.sh installs it for the test harness)"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def backtest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backtest")
    cmd = [
        sys.executable,
        "-m",
        "sentinel.cli",
        "backtest",
        "-q",
        "--input",
        str(SAMPLE),
        "--output",
        str(out),
        "--labels",
        f"{SAMPLE}.labels.json",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"backtest failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return out


def _keys(out: Path) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for name in ("windows.jsonl", "anomalies.jsonl"):
        p = out / name
        if p.exists():
            for line in p.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    keys.add((r["service"], r["model"]))
    labels = json.loads(Path(f"{SAMPLE}.labels.json").read_text())
    keys |= {(i["service"], i["model"]) for i in labels["incidents"]}
    return keys


def test_backtest_report_renders_every_chart_without_console_errors(
    chromium: Path, backtest_dir: Path, tmp_path: Path
) -> None:
    from sentinel.report_html import CHARTS

    html = backtest_dir / "report.html"
    assert html.is_file(), "sentinel backtest did not write report.html"
    n_anomalies = sum(1 for line in (backtest_dir / "anomalies.jsonl").read_text().splitlines() if line.strip())
    expected = len(_keys(backtest_dir)) * len(CHARTS)

    res = open_page(html.as_uri(), PROBE, tmp_path / "profile", screenshot=True)

    assert res.problems == [], "the report page is not clean:\n" + "\n".join(res.problems)
    v = res.value
    assert v["scripts_with_src"] == 0, "the report must be self-contained (no external scripts/styles/images)"
    assert v["charts"] == expected, f"{v['charts']} charts in the page, expected {expected} (keys × metrics)"
    assert v["expected"] == expected
    assert v["drawn"] == expected, f"only {v['drawn']} of {expected} charts drew a line"
    assert v["page_charts"] == expected and v["page_check"] == expected, f"the page's own check: {v}"
    assert v["markers"] == n_anomalies, f"{v['markers']} anomaly markers for {n_anomalies} anomalies"
    assert res.screenshot and res.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    if dest := os.environ.get("REPORT_SCREENSHOT"):
        Path(dest).write_bytes(res.screenshot)


def test_harness_sees_console_errors_exceptions_and_network(chromium: Path, tmp_path: Path) -> None:
    """Negative control: a page with each kind of problem is reported as such (the check above can fail)."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><svg class='chart'></svg>"
        "<img src='http://127.0.0.1:9/missing.png'>"
        "<script>console.error('boom'); console.log('fine');</script>"
        "<script>notDefined();</script></body></html>"
    )
    res = open_page(page.as_uri(), PROBE, tmp_path / "profile")
    problems = "\n".join(res.problems)
    assert any("boom" in m for m in res.console), problems
    assert not any("fine" in m for m in res.console), "console.log is not an error"
    assert any("notDefined" in m for m in res.exceptions), problems
    assert any(u.startswith("http://127.0.0.1:9/") for u in res.requests), problems
    assert res.value["charts"] == 1 and res.value["drawn"] == 0


if __name__ == "__main__":  # by hand: python tests/integration/test_report_browser.py DIR/report.html [OUT.png]
    import tempfile

    with tempfile.TemporaryDirectory() as prof:
        r = open_page(Path(sys.argv[1]).resolve().as_uri(), PROBE, Path(prof), screenshot=True)
    print(json.dumps({"value": r.value, "problems": r.problems}, indent=2))
    if len(sys.argv) > 2 and r.screenshot:
        Path(sys.argv[2]).write_bytes(r.screenshot)
