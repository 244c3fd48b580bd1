"""The page in a real browser: Playwright driving Debian's Chromium against a live uvicorn.

Chromium's fake media device plays a WAV of real music as the "microphone";
the page records it with MediaRecorder (WebM/Opus), uploads it as is, and must
show the right song. Needs ``/usr/bin/chromium`` (``apt-get install -y
chromium``; never ``playwright install``): skipped locally without it, a
failure under ``CI=true``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import need, require, run_uvicorn

require("fastapi")

pytestmark = [pytest.mark.browser, pytest.mark.corpus]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    need(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} not found: apt-get install -y chromium (make test does)")
    sync_api = require("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p.chromium


def _wait_until(page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JS expression from Python until it is truthy.

    Playwright's ``wait_for_function`` polls by ``eval`` inside the page, which
    the page's own Content-Security-Policy (no 'unsafe-eval') forbids once the
    first check fails; ``page.evaluate`` goes through the debugger protocol and
    is allowed, so the page is tested under its real CSP.
    """
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for: {expression}")
        time.sleep(0.05)


def _launch(chromium, *extra: str):
    args = [
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        *extra,
    ]
    return chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


@pytest.fixture(scope="module")
def page_url(server_index):
    """The app on a live uvicorn (module-scoped: one server for both browser tests)."""
    from songmine.server import ServerSettings, create_app

    app = create_app(ServerSettings(index_path=server_index, refresh_interval_s=0))
    with run_uvicorn(app) as url:
        yield f"{url}/"


@pytest.fixture(scope="module")
def mic_wav(tagged_cuts, tmp_path_factory) -> Path:
    """What the fake microphone plays: 20 s of cut 3 from 5 s in, 48 kHz 16-bit mono WAV."""
    import soundfile as sf

    from songmine.audio import load

    y = load(tagged_cuts[3], sr=48000, offset=5.0, duration=20.0)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(path, y, 48000, subtype="PCM_16")
    return path


def test_record_from_the_microphone_finds_the_song(browser, page_url, mic_wav, tagged_cuts, tmp_path):
    b = _launch(
        browser,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}",
    )
    try:
        page = b.new_page(viewport={"width": 900, "height": 800})
        answers = []
        page.on("response", lambda r: answers.append(r) if r.url.endswith("/api/identify") else None)
        page.goto(page_url)
        _wait_until(page, "document.getElementById('library').textContent.includes('5 tracks')")
        assert page.locator("#seconds").input_value() == "8"  # the default recording length
        page.select_option("#seconds", "5")
        page.click("#record")
        page.wait_for_selector("body[data-state='recording']", timeout=10_000)
        # the countdown runs and the level meter moves while recording
        _wait_until(page, "document.getElementById('countdown').textContent !== ''")
        _wait_until(page, "parseFloat(document.getElementById('level').style.width) > 5", timeout_s=10.0)
        page.wait_for_selector("#results .match", timeout=60_000)
        best = page.locator("#results .match").first
        assert best.locator(".title").inner_text().endswith("(cut 3)")
        assert best.locator(".who").inner_text().startswith(tagged_cuts[3].name.split("__")[0])
        assert "% sure" in best.locator(".pct").inner_text()
        assert "into the track" in best.locator(".offset").inner_text()
        assert page.get_attribute("body", "data-state") == "done"
        # the browser's own recording went up as is (MediaRecorder's WebM/Opus, named by its type)
        assert len(answers) == 1 and answers[0].status == 200
        assert answers[0].json()["query"] == "microphone.webm"
        assert "multipart/form-data" in answers[0].request.headers["content-type"]
        constraints = page.evaluate(
            """async () => {
                const s = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false,
                    noiseSuppression: false, autoGainControl: false}});
                const c = s.getAudioTracks()[0].getSettings(); s.getTracks().forEach(t => t.stop()); return c; }"""
        )
        assert constraints.get("echoCancellation") is False
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    finally:
        b.close()


def test_upload_a_file_and_see_errors(browser, page_url, tagged_cuts, tmp_path):
    import soundfile as sf

    from songmine.audio import load

    clip = tmp_path / "clip.flac"
    sf.write(clip, load(tagged_cuts[1], sr=22050, offset=10.0, duration=10.0), 22050)
    junk = tmp_path / "notes.mp3"
    junk.write_text("this is not audio at all\n" * 100)
    b = _launch(browser)
    try:
        page = b.new_page()
        page.goto(page_url)
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#results .match", timeout=30_000)
        assert page.locator("#results .match .title").first.inner_text().endswith("(cut 1)")
        assert "0:10" in page.locator("#results .match .offset").first.inner_text()

        page.set_input_files("#file", str(junk))
        page.wait_for_selector("body[data-state='error']", timeout=30_000)
        assert "not a readable audio file" in page.inner_text("#status")
        assert page.locator("#results .match").count() == 0
    finally:
        b.close()
