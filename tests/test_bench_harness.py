"""The benchmark harness: it serves an app with gunicorn on loopback, and counts only real answers."""
import pytest

from bench.harness import BARE_PATH, BARE_TARGET, drive, serve


def test_harness_measures_the_bare_app_and_counts_failures_as_errors():
    with serve(BARE_TARGET, workers=1) as base_url:
        ok = drive(base_url, [BARE_PATH], concurrency=1, duration=0.5, warmup=1)
        missing = drive(base_url, ["/missing"], concurrency=1, duration=0.2, warmup=0)
    assert ok.count > 0 and ok.errors == 0 and ok.percentile(95) > 0
    assert missing.count == 0 and missing.errors > 0 and missing.statuses.get(404) == missing.errors


def test_harness_refuses_anything_but_loopback():
    with pytest.raises(ValueError, match="127.0.0.1"):
        drive("http://example.com", [BARE_PATH], duration=0.1)
