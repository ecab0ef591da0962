"""The served dashboard in a real headless Chromium: headings, the ablation table, the charts, a screenshot that
is not blank. Set PROXMO_SCREENSHOT=path to keep the screenshot (docs/img/dashboard.png is made this way)."""

import io
import os
import time
from pathlib import Path

import pytest

from dashboards.serve import dashboard_service
from tests.browser import Browser, chromium_binary
from tests.dashboards.store import build_store
from tests.servers import free_port

pytestmark = pytest.mark.skipif(chromium_binary() is None,
                                reason="needs chromium (apt-get install chromium; .ci/run installs it)")

READY = ("document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= 8"
         " && !document.querySelector('[data-testid=\"stSkeleton\"]')"
         " && document.querySelectorAll('[data-testid=\"stDataFrame\"]').length >= 3")


@pytest.mark.integration
def test_the_served_dashboard_renders_in_chromium(tmp_path):
    from PIL import Image, ImageStat

    store = build_store(tmp_path / "store")
    service = dashboard_service("127.0.0.1", free_port(), store.tracking_uri, store.optuna_storage,
                                "http://127.0.0.1:5000")
    service.start(tmp_path)
    browser = None
    try:
        for _ in range(240):
            if service.up():
                break
            assert service.process.poll() is None, (tmp_path / "dashboard.log").read_text()
            time.sleep(0.25)
        browser = Browser()
        browser.open(service.url, READY, timeout=180)
        headings = browser.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.innerText)")
        assert headings == ["Ablations", "Sweeps", "Runs", "Overhead"], headings
        titles = browser.evaluate("Array.from(document.querySelectorAll('.gtitle')).map(t => t.textContent)")
        assert any("Contour" in t for t in titles) and any("band" in t for t in titles), titles
        png = browser.screenshot()
    finally:
        if browser is not None:
            browser.close()
        service.stop()
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size[0] >= 1200 and image.size[1] >= 2000
    stats = ImageStat.Stat(image)
    assert stats.stddev[0] > 20, "the page is blank"  # text, tables and charts, not one colour
    assert len(image.getcolors(maxcolors=1 << 16) or []) > 50
    keep = os.environ.get("PROXMO_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(png)
