"""`portcullis mcp scan` against real MCP servers (official Python SDK, FastMCP):
a deliberately vulnerable one (every planted issue reported) and a clean one
(nothing above low), over Streamable HTTP and stdio."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, clean_env, free_port, wait_for_port

SERVERS = Path(__file__).parent / "mcp_servers"
SERVER = SERVERS / "scan_server.py"
sys.path.insert(0, str(SERVERS))
from scan_server import PLANTED  # noqa: E402

TOKEN = "s3cret-scan-token-0042"


class ScanServer:
    def __init__(self, tmp_path, kind, token=None, json_response=False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log_path = tmp_path / f"scan-{kind}-{self.port}.log"
        self.log = open(self.log_path, "w")
        args = [sys.executable, str(SERVER), "--kind", kind, "--port", str(self.port)]
        if token:
            args += ["--token", token]
        if json_response:
            args.append("--json-response")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        wait_for_port(self.proc, self.port, self.log_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scan")
    vulnerable = ScanServer(tmp, "vulnerable")
    clean = ScanServer(tmp, "clean", token=TOKEN)
    yield vulnerable, clean
    vulnerable.stop()
    clean.stop()


def scan(*args, timeout=60):
    return subprocess.run([BIN, "mcp", "scan", *args], capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


def pairs(report):
    return {(f["id"], f["target"]) for f in report["findings"]}


def test_vulnerable_server_reports_each_planted_issue(servers):
    vulnerable, _ = servers
    out = scan(vulnerable.url, "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["transport"] == "streamable_http"
    assert report["server"]["name"] == "scan-vulnerable"
    assert report["server"]["protocol_version"] == "2025-11-25"
    # Eight tools over three pages (nextCursor followed), both resources read.
    assert report["counts"] == {"tools": 8, "resources": 2, "resources_read": 2, "prompts": 1}
    missing = set(PLANTED) - pairs(report)
    assert not missing, (missing, report["findings"])
    by = {}
    for f in report["findings"]:
        by.setdefault((f["id"], f["target"]), []).append(f)
    rules = lambda key: {r for f in by[key] for r in f.get("rules", [])}  # noqa: E731
    assert {"MCP-001", "MCP-003"} <= rules(("poisoned-description", "tool:add"))
    assert "ENC-002" in rules(("poisoned-description", "tool:formatter"))
    assert "SEC-AWS-001" in rules(("resource-secret", "resource:config://env"))
    assert by[("dangerous-capability", "tool:run_command")][0]["severity"] == "high"
    assert by[("no-auth", "server")][0]["severity"] == "low"  # loopback
    # Most severe first.
    order = ["critical", "high", "medium", "low", "info"]
    ranks = [order.index(f["severity"]) for f in report["findings"]]
    assert ranks == sorted(ranks)
    # Nothing planted on the annotated read-only tool but its well-known name.
    assert {i for i, t in pairs(report) if t == "tool:read_file"} == {"well-known-name"}
    # `add` is a plain word in daily_notes' description ("always add ..."), not a mention.
    assert not any(f["target"] == "tool:daily_notes" and "`add`" in f["message"] for f in report["findings"])
    # Matched secrets never appear in the report.
    assert "AKIAIOSFODNN7EXAMPLE" not in out.stdout


def test_exit_code_follows_fail_on(servers):
    vulnerable, _ = servers
    assert scan(vulnerable.url, "--fail-on", "critical").returncode == 1
    # The highest finding is critical: nothing is "above critical", so every level fails.
    assert scan(vulnerable.url, "--fail-on", "low").returncode == 1
    out = scan(vulnerable.url, "--fail-on", "bogus")
    assert out.returncode == 2 and "--fail-on" in out.stderr


def test_table_output(servers):
    vulnerable, _ = servers
    out = scan(vulnerable.url)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0].startswith(vulnerable.url) and "scan-vulnerable" in lines[0]
    assert lines[1].split() == ["SEVERITY", "ID", "TARGET", "MESSAGE"]
    assert lines[2].startswith("critical")
    assert lines[-1].endswith("finding(s)")


def test_clean_server_with_credentials(servers):
    _, clean = servers
    out = scan(clean.url, "--header", f"Authorization: Bearer {TOKEN}", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["counts"] == {"tools": 2, "resources": 1, "resources_read": 1, "prompts": 1}
    assert all(f["severity"] in ("info", "low") for f in report["findings"]), report["findings"]
    # The probe without the header was refused: no no-auth finding.
    assert "no-auth" not in {f["id"] for f in report["findings"]}
    assert TOKEN not in out.stdout + out.stderr
    table = scan(clean.url, "-H", f"Authorization: Bearer {TOKEN}", "--fail-on", "low")
    assert table.returncode == 0 and "no findings" in table.stdout


def test_clean_server_without_credentials_is_an_error(servers):
    _, clean = servers
    out = scan(clean.url)
    assert out.returncode == 2
    assert "401" in out.stderr and "--header" in out.stderr
    wrong = scan(clean.url, "-H", "Authorization: Bearer not-the-token")
    assert wrong.returncode == 2 and "not-the-token" not in wrong.stderr + wrong.stdout


def test_vulnerable_server_ignores_credentials(servers):
    vulnerable, _ = servers
    out = scan(vulnerable.url, "-H", f"Authorization: Bearer {TOKEN}", "--json")
    report = json.loads(out.stdout)
    noauth = [f for f in report["findings"] if f["id"] == "no-auth"]
    assert noauth and "without the given credentials" in noauth[0]["message"]
    assert TOKEN not in out.stdout + out.stderr


def test_unreachable_and_bad_targets():
    port = free_port()
    out = scan(f"http://127.0.0.1:{port}/mcp", "--timeout", "3")
    assert out.returncode == 2
    assert "cannot reach" in out.stderr
    out = scan("ftp://example.com/mcp")
    assert out.returncode == 2 and "http://" in out.stderr
    out = scan("http://127.0.0.1:1/mcp", "-H", "no colon here")
    assert out.returncode == 2 and "Name: value" in out.stderr


def test_json_answers(tmp_path):
    # The same vulnerable server answering with application/json instead of SSE.
    server = ScanServer(tmp_path, "vulnerable", json_response=True)
    try:
        out = scan(server.url, "--json")
        assert out.returncode == 1, out.stderr
        report = json.loads(out.stdout)
        assert not set(PLANTED) - pairs(report)
    finally:
        server.stop()


class RawServer:
    """A hand-written Streamable HTTP server: answers initialize with an older
    version, then refuses requests without that version and its session id, and
    returns the same `nextCursor` forever."""

    def __init__(self):
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, status, body=None, headers=()):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                msg = json.loads(self.rfile.read(int(self.headers["content-length"])))
                seen.append((msg.get("method"), self.headers.get("mcp-protocol-version"), self.headers.get("mcp-session-id")))
                if msg.get("method") == "initialize":
                    result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                              "serverInfo": {"name": "raw", "version": "0"}}
                    return self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result},
                                      [("mcp-session-id", "sess-1")])
                if "id" not in msg:
                    return self.reply(202)
                if self.headers.get("mcp-protocol-version") != "2025-06-18" or self.headers.get("mcp-session-id") != "sess-1":
                    return self.reply(400, {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32600, "message": "bad headers"}})
                tool = {"name": "add", "description": "Adds.", "inputSchema": {"type": "object"}}
                return self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [tool], "nextCursor": "again"}})

            def do_DELETE(self):
                seen.append(("DELETE", None, self.headers.get("mcp-session-id")))
                self.reply(200)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mcp"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_older_version_session_and_repeated_cursor():
    raw = RawServer()
    try:
        out = scan(raw.url, "--json", "--fail-on", "critical")
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["server"]["protocol_version"] == "2025-06-18"
        assert report["counts"]["tools"] == 2  # two pages, then the cursor repeated
        assert any("repeated a cursor" in w for w in report["warnings"])
        assert ("duplicate-tool", "tool:add") in pairs(report)  # the same tool on both pages
        methods = [m for m, _, _ in raw.seen]
        assert methods == ["initialize", "notifications/initialized", "tools/list", "tools/list", "DELETE"]
        assert all(v == "2025-06-18" and s == "sess-1" for m, v, s in raw.seen[1:4])
        assert raw.seen[-1][2] == "sess-1"
    finally:
        raw.httpd.shutdown()


def test_not_mcp_answer_is_a_protocol_error(tmp_path):
    # A plain HTTP server that answers 200 with HTML.
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        out = scan(f"http://127.0.0.1:{httpd.server_address[1]}/mcp")
        assert out.returncode == 2
        assert "no JSON-RPC response" in out.stderr
    finally:
        httpd.shutdown()


def test_stdio_vulnerable_and_clean():
    # A Python server can take a while to start on a loaded machine.
    out = scan("--json", "--timeout", "30", "--", sys.executable, str(SERVER), "--kind", "vulnerable", "--stdio")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["transport"] == "stdio"
    want = {p for p in PLANTED if p[0] != "no-auth"}
    assert not want - pairs(report), report["findings"]
    assert "no-auth" not in {f["id"] for f in report["findings"]}
    out = scan("--timeout", "30", "--", sys.executable, str(SERVER), "--kind", "clean", "--stdio")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no findings" in out.stdout


def test_stdio_command_that_is_not_a_server():
    out = scan("--timeout", "2", "--", sys.executable, "-c", "import time; time.sleep(30)")
    assert out.returncode == 2 and "no answer within 2 s" in out.stderr
    out = scan("--", "/nonexistent/mcp-server")
    assert out.returncode == 2 and "cannot start" in out.stderr


def test_help():
    out = subprocess.run([BIN, "mcp", "scan", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--header", "--json", "--fail-on", "--timeout", "--max-pages", "--max-resources"):
        assert flag in out.stdout


# --- The same scan from the admin API, against MCP proxies' servers, stored. ---

ENV_SECRET = "env-secret-value-7731"
URL_SECRET = "url-secret-5519"


def wait_scan(gw, token, scan_id, seconds=90):
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        r = gw.request("GET", f"/api/v1/mcp/scans/{scan_id}", token=token)
        assert r.status == 200, r.text
        if r.json["status"] != "running":
            return r.json
        time.sleep(0.2)
    raise AssertionError(f"scan {scan_id} still running")


def start_scan(gw, token, proxy_id, expect=202):
    r = gw.request("POST", "/api/v1/mcp/scans", {"proxy_id": proxy_id}, token=token)
    assert r.status == expect, r.text
    return r.json


def create(gw, token, path, body):
    r = gw.request("POST", path, body, token=token)
    assert r.status == 201, r.text
    return r.json


def scan_pairs(scan):
    return {(f["check"], f["target"]) for f in scan["findings"]}


def test_api_scans_are_stored_listed_and_alerted(servers, gateway):
    vulnerable, clean = servers
    gw = gateway()
    token = gw.login()
    cred = create(gw, token, "/api/v1/credentials", {"name": "clean-mcp", "provider": "openai_compatible", "secret": TOKEN})
    vuln = create(gw, token, "/api/v1/proxies", {"name": "vuln", "kind": "mcp", "upstream_url": vulnerable.url})
    # A secret in the URL is refused (the API shows URLs): it goes in the credential.
    r = gw.request("POST", "/api/v1/proxies", {"name": "safe", "kind": "mcp", "credential_id": cred["id"],
                                               "upstream_url": clean.url.replace("//", f"//scan:{URL_SECRET}@")},
                   token=token)
    assert r.status == 400 and "upstream_url" in r.text and URL_SECRET not in r.text, r.text
    safe = create(gw, token, "/api/v1/proxies", {"name": "safe", "kind": "mcp", "credential_id": cred["id"],
                                                  "upstream_url": clean.url})

    started = start_scan(gw, token, vuln["id"])
    assert [s["status"] for s in started["scans"]] == ["running"]
    scan = wait_scan(gw, token, started["scans"][0]["id"])
    assert scan["status"] == "done", scan
    assert scan["proxy_id"] == vuln["id"] and scan["server"] == ""
    assert scan["transport"] == "streamable_http" and scan["target"] == vulnerable.url
    assert scan["requested_by"] == "user:admin"
    assert not set(PLANTED) - scan_pairs(scan), scan["findings"]
    assert scan["max_severity"] == "critical"
    assert scan["server_info"]["name"] == "scan-vulnerable"
    assert {k: scan["server_info"][k] for k in ("tools", "resources", "resources_read", "prompts")} == \
        {"tools": 8, "resources": 2, "resources_read": 2, "prompts": 1}
    counted = {s: sum(1 for f in scan["findings"] if f["severity"] == s) for s in scan["counts"]}
    assert counted == scan["counts"] and scan["counts"]["critical"] >= 1
    assert scan["finished_at"] >= scan["started_at"]
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(scan)

    # Listed, newest first, paginated.
    listed = gw.request("GET", f"/api/v1/mcp/scans?proxy={vuln['id']}", token=token).json
    assert [s["id"] for s in listed["scans"]] == [scan["id"]]
    # A high finding raised an alert through the alert path.
    alerts = gw.request("GET", f"/api/v1/alerts?proxy={vuln['id']}&limit=500", token=token).json["alerts"]
    rules = {(a["rule"], a["location"], a["severity"]) for a in alerts}
    assert ("mcp-scan-dangerous-capability", "tool:run_command", "high") in rules, rules
    assert all(a["event_id"] == f"mcp-scan:{scan['id']}" for a in alerts)
    assert all(a["severity"] in ("high", "critical") for a in alerts)
    # Audited.
    audit = gw.request("GET", "/api/v1/audit?action=mcp_scan.run", token=token).json
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert any(e["target"] == "proxy:vuln" for e in entries), audit

    # The clean server behind a bearer credential: nothing above low, no secret stored.
    safe_scan = wait_scan(gw, token, start_scan(gw, token, safe["id"])["scans"][0]["id"])
    assert safe_scan["status"] == "done", safe_scan
    assert all(f["severity"] in ("info", "low") for f in safe_scan["findings"]), safe_scan["findings"]
    assert safe_scan["counts"]["high"] == safe_scan["counts"]["critical"] == safe_scan["counts"]["medium"] == 0
    assert "no-auth" not in {f["check"] for f in safe_scan["findings"]}  # the probe without the credential was refused
    assert safe_scan["target"] == clean.url
    stored = json.dumps(safe_scan)
    assert TOKEN not in stored and URL_SECRET not in stored

    page = gw.request("GET", "/api/v1/mcp/scans?limit=1", token=token).json
    assert [s["id"] for s in page["scans"]] == [safe_scan["id"]] and page["next"]
    older = gw.request("GET", f"/api/v1/mcp/scans?limit=1&cursor={page['next']}", token=token).json
    assert [s["id"] for s in older["scans"]] == [scan["id"]]

    # Roles: a viewer reads but does not scan; clear 4xx for an LLM or unknown proxy.
    create(gw, token, "/api/v1/users", {"username": "viewer", "password": "viewer-password-123", "role": "read_only"})
    viewer = gw.login("viewer", "viewer-password-123")
    start_scan(gw, viewer, vuln["id"], expect=403)
    assert gw.request("GET", f"/api/v1/mcp/scans/{scan['id']}", token=viewer).status == 200
    llm = create(gw, token, "/api/v1/proxies", {"name": "llm", "upstream_url": "http://127.0.0.1:1"})
    assert "LLM proxy" in start_scan(gw, token, llm["id"], expect=400)["error"]["message"]
    start_scan(gw, token, "no-such-proxy", expect=404)
    # Neither the credential nor the URL's password is in any scan or alert.
    shown = gw.request("GET", "/api/v1/mcp/scans?limit=500", token=token).text
    shown += gw.request("GET", "/api/v1/alerts?limit=500", token=token).text
    assert TOKEN not in shown and URL_SECRET not in shown


def test_api_scan_of_a_stdio_proxy(gateway):
    gw = gateway()
    token = gw.login()
    proxy = create(gw, token, "/api/v1/proxies", {
        "name": "stdio-vuln", "kind": "mcp", "upstream_command": sys.executable,
        "upstream_args": [str(SERVER), "--kind", "vulnerable", "--stdio"],
        "upstream_env": {"SCAN_SECRET": ENV_SECRET},
    })
    # The scan starts the proxy's program: admins only, as configuring it is.
    create(gw, token, "/api/v1/users", {"username": "dev", "password": "dev-password-123", "role": "developer"})
    dev = gw.login("dev", "dev-password-123")
    assert "admins" in start_scan(gw, dev, proxy["id"], expect=403)["error"]["message"]
    scan = wait_scan(gw, token, start_scan(gw, token, proxy["id"])["scans"][0]["id"])
    assert scan["status"] == "done", scan
    assert scan["transport"] == "stdio" and scan["target"] == sys.executable
    want = {p for p in PLANTED if p[0] != "no-auth"}
    assert not want - scan_pairs(scan), scan["findings"]
    stored = json.dumps(scan)
    assert ENV_SECRET not in stored and "--stdio" not in stored


def test_api_scan_of_an_unreachable_server_fails(gateway):
    gw = gateway()
    token = gw.login()
    proxy = create(gw, token, "/api/v1/proxies", {"name": "gone", "kind": "mcp",
                                                   "upstream_url": f"http://127.0.0.1:{free_port()}/mcp"})
    scan = wait_scan(gw, token, start_scan(gw, token, proxy["id"])["scans"][0]["id"])
    assert scan["status"] == "failed" and "cannot reach" in scan["error"], scan
    assert scan["findings"] == [] and scan["max_severity"] is None


def test_api_scan_of_a_federation_stores_one_row_per_server(servers, gateway):
    vulnerable, clean = servers
    gw = gateway()
    token = gw.login()
    cred = create(gw, token, "/api/v1/credentials", {"name": "clean-mcp", "provider": "openai_compatible", "secret": TOKEN})
    fed = create(gw, token, "/api/v1/proxies", {"name": "fed", "kind": "mcp", "mcp_servers": [
        {"name": "vuln", "upstream_url": vulnerable.url},
        {"name": "safe", "upstream_url": clean.url, "credential_id": cred["id"]},
    ]})
    started = start_scan(gw, token, fed["id"])["scans"]
    assert [s["server"] for s in started] == ["vuln", "safe"]
    done = {s["server"]: wait_scan(gw, token, s["id"]) for s in started}
    assert not set(PLANTED) - scan_pairs(done["vuln"])
    assert done["safe"]["status"] == "done" and done["safe"]["max_severity"] in (None, "info", "low")
    assert done["safe"]["target"] == clean.url and TOKEN not in json.dumps(done)
    alerts = gw.request("GET", f"/api/v1/alerts?proxy={fed['id']}&limit=500", token=token).json["alerts"]
    assert {a["event_id"] for a in alerts} == {f"mcp-scan:{done['vuln']['id']}"}
    assert all("(server vuln)" in a["note"] for a in alerts)
