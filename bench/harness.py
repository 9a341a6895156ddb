"""Serve a WSGI app with gunicorn on loopback, drive it with concurrent clients, and report latency.

`benchmark(target, scenarios)` is the entry point later benchmarks reuse: it serves `target`
(a gunicorn "module:app" string), runs each `Scenario` against it, then serves the bare Flask app
of `bench/bare_app.py` the same way and prints every figure beside the bare one.
Clients only ever talk to 127.0.0.1, and every load loop is bounded in time and in requests.
"""
import contextlib
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
BARE_TARGET = "bench.bare_app:app"
BARE_PATH = "/bare"
LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 30
MAX_REQUESTS = 100_000


@dataclass
class Scenario:
    """One thing to measure: a label, the paths to cycle through, and who asks."""

    label: str
    paths: list
    login: tuple | None = None  # (username, password) signed in through the real login form
    cookies: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


@dataclass
class Result:
    """Latencies (seconds, sorted) and counts from one driven scenario."""

    label: str
    latencies: list
    errors: int
    elapsed: float
    statuses: dict = field(default_factory=dict)

    @property
    def count(self):
        return len(self.latencies)

    @property
    def rps(self):
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, q):
        """Return the q-th percentile latency in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        index = min(len(self.latencies) - 1, max(0, math.ceil(q / 100 * len(self.latencies)) - 1))
        return self.latencies[index] * 1000


def free_port():
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _wait_for_port(port, process, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def serve(target, *, workers=2, env=None, startup_timeout=60, worker_class="sync", threads=1):
    """Run `gunicorn target` with `workers` workers (sync by default) on a free loopback port; yield its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", worker_class,
               "--threads", str(threads),
               "--bind", f"{LOOPBACK}:{port}", "--chdir", str(ROOT), "--log-level", "warning",
               "--timeout", "120", target]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not _wait_for_port(port, process, startup_timeout):
                log.seek(0)
                raise RuntimeError(f"gunicorn {target} did not start:\n{log.read()[-3000:]}")
            yield f"http://{LOOPBACK}:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _check_loopback(base_url):
    if urlsplit(base_url).hostname != LOOPBACK:
        raise ValueError(f"benchmarks only talk to {LOOPBACK}, not {base_url}")


def sign_in(base_url, username, password):
    """Sign in through the real login form and return the session cookies."""
    _check_loopback(base_url)
    with requests.Session() as session:
        page = session.get(base_url + "/login/", timeout=REQUEST_TIMEOUT)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
        if token is None:
            raise RuntimeError("the login page has no CSRF token")
        answer = session.post(base_url + "/login/", allow_redirects=False, timeout=REQUEST_TIMEOUT,
                              data={"username": username, "password": password, "csrf_token": token.group(1)})
        if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
            raise RuntimeError(f"{username} could not sign in (HTTP {answer.status_code})")
        return session.cookies.get_dict()


def _client(base_url, paths, cookies, headers, deadline, budget, out, offset):
    """Request `paths` in turn until the deadline or the shared budget runs out."""
    latencies, statuses, errors = [], {}, 0
    with requests.Session() as session:
        session.cookies.update(cookies)
        session.headers.update(headers)
        index = offset
        while time.monotonic() < deadline and budget.acquire(blocking=False):
            url = base_url + paths[index % len(paths)]
            index += 1
            started = time.perf_counter()
            try:
                response = session.get(url, allow_redirects=False, timeout=REQUEST_TIMEOUT)
                response.content  # noqa: B018  (the body is part of the latency)
                status = response.status_code
            except requests.RequestException:
                status = "exception"
            latency = time.perf_counter() - started
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(latency)
            else:
                errors += 1
    out.append((latencies, statuses, errors))


def drive(base_url, paths, *, label="", cookies=None, headers=None, concurrency=2, duration=5.0,
          max_requests=MAX_REQUESTS, warmup=4):
    """Request `paths` from `concurrency` threads for `duration` seconds; return the Result.

    Only 200 answers count as measured requests; anything else (a redirect to the login page,
    a 500) is an error, so a broken scenario cannot pass for a fast one.
    """
    _check_loopback(base_url)
    for path in paths:  # first requests load templates and warm connection pools
        for _ in range(warmup):
            requests.get(base_url + path, cookies=cookies, headers=headers, timeout=REQUEST_TIMEOUT)
    budget = threading.Semaphore(max_requests)
    out, threads = [], []
    started = time.monotonic()
    deadline = started + duration
    for n in range(concurrency):
        thread = threading.Thread(target=_client, args=(base_url, paths, cookies or {}, headers or {},
                                                        deadline, budget, out, n))
        threads.append(thread)
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + REQUEST_TIMEOUT + 5)
    elapsed = time.monotonic() - started
    latencies, statuses, errors = [], {}, 0
    for lat, stat, err in out:
        latencies.extend(lat)
        errors += err
        for key, value in stat.items():
            statuses[key] = statuses.get(key, 0) + value
    return Result(label=label, latencies=sorted(latencies), errors=errors, elapsed=elapsed, statuses=statuses)


HEADER = f"{'scenario':<44} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} " \
         f"{'p99 ms':>8} {'req/s vs bare':>13} {'p50 vs bare':>11}"


def format_row(result, bare=None):
    """Return one table line for `result`, with ratios to the bare result when given."""
    ratios = ""
    if bare is not None and bare.rps and result.rps:
        ratios = f" {result.rps / bare.rps:>12.1%} {result.percentile(50) / bare.percentile(50):>10.1f}x"
    return (f"{result.label:<44} {result.count:>8} {result.errors:>6} {result.rps:>8.1f} "
            f"{result.percentile(50):>8.1f} {result.percentile(95):>8.1f} {result.percentile(99):>8.1f}{ratios}")


def benchmark(target, scenarios, *, env=None, workers=2, concurrency=2, duration=5.0, goal_p95_ms=None):
    """Measure every scenario on `target`, then the bare Flask app, and print them side by side."""
    results, signed_in = [], {}
    load_before = os.getloadavg()[0]
    with serve(target, workers=workers, env=env) as base_url:
        for scenario in scenarios:
            cookies = dict(scenario.cookies)
            if scenario.login:
                # One sign-in per user and run: sign-ins are rate limited and audited.
                if scenario.login not in signed_in:
                    signed_in[scenario.login] = sign_in(base_url, *scenario.login)
                cookies.update(signed_in[scenario.login])
            results.append(drive(base_url, scenario.paths, label=scenario.label, cookies=cookies,
                                 headers=scenario.headers, concurrency=concurrency, duration=duration))
    with serve(BARE_TARGET, workers=workers) as base_url:
        bare = drive(base_url, [BARE_PATH], label="bare Flask " + BARE_PATH, concurrency=concurrency,
                     duration=duration)
    print(f"gunicorn: {workers} sync workers; clients: {concurrency} threads, {duration:g} s per scenario; "
          f"{os.cpu_count()} CPUs, 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(HEADER)
    print(format_row(bare))
    for result in results:
        print(format_row(result, bare) + _verdict(result, goal_p95_ms))
        if result.errors:
            print(f"    non-200 answers: {result.statuses}")
    return results, bare


def _verdict(result, goal_p95_ms):
    if goal_p95_ms is None or not result.latencies:
        return ""
    return "  ok" if result.percentile(95) < goal_p95_ms and not result.errors else f"  OVER {goal_p95_ms:g} ms goal"
