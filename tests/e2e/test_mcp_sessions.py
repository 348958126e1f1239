"""The gateway's own MCP session ids: sealed (AES-256-GCM under a key derived from
the master key) around the upstream's session id and the key that opened the
session, so any replica with the same master key serves the session, and no other
key, proxy or altered id can use it (404, like any unknown session)."""

import asyncio
import re

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from test_mcp import ADD, McpSetup, mcp_setup, text_of  # noqa: F401 (fixture)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}
ECHO = {"name": "echo", "description": "Echoes the query."}


def rpc(http, url, key, body, session=None):
    headers = {**ACCEPT, "authorization": f"Bearer {key}", "mcp-protocol-version": "2025-11-25"}
    if session:
        headers["mcp-session-id"] = session
    return http.post(url, json=body, headers=headers)


class Alternating(httpx.AsyncBaseTransport):
    """Sends the first request to one gateway and every later one to the other."""

    def __init__(self, first_port, then_port):
        self.inner = httpx.AsyncHTTPTransport()
        self.ports = (first_port, then_port)
        self.sent = []

    async def handle_async_request(self, request):
        port = self.ports[0] if not self.sent else self.ports[1]
        request.url = request.url.copy_with(port=port)
        self.sent.append((request.method, port))
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


def test_a_session_opened_on_one_replica_is_served_by_the_other(gateway, tmp_path, pg_database):
    shared = {
        "PORTCULLIS_DATABASE_URL": pg_database,
        "PORTCULLIS_ADMIN_PASSWORD": "mcp-admin-password-1",
        "PORTCULLIS_JWT_SECRET": "j" * 48,
        "PORTCULLIS_ENCRYPTION_KEY": "cd" * 32,
    }
    a = gateway(data_dir=tmp_path / "a", env=shared)
    a.first_password = lambda: "mcp-admin-password-1"
    s = McpSetup(a, tmp_path)
    try:
        server = s.server([ADD, ECHO])
        # No own port: each replica serves it under its gateway port, /p/fleet.
        proxy = s.proxy("fleet", server, port=False, mcp_auto_approve=True)
        b = gateway(data_dir=tmp_path / "b", env=shared)
        url_a, url_b = f"{a.base}/p/fleet/mcp", f"{b.base}/p/fleet/mcp"

        # The official SDK: initialize on A, everything after on B.
        transport = Alternating(a.port, b.port)

        async def go():
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {s.key}"}, transport=transport,
                                         timeout=httpx.Timeout(30, read=60)) as http:
                async with streamable_http_client(url_a, http_client=http) as (read, write, _):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        names = sorted(t.name for t in (await session.list_tools()).tools)
                        result = await session.call_tool("add", {"a": 19, "b": 23})
                        return names, text_of(result)

        names, answer = asyncio.run(asyncio.wait_for(go(), 30))
        assert names == ["add", "echo"]
        assert answer == "42"
        assert transport.sent[0] == ("POST", a.port)
        assert len([x for x in transport.sent if x == ("POST", b.port)]) >= 3, transport.sent

        with httpx.Client(timeout=10) as http:
            r = rpc(http, url_a, s.key, INIT)
            assert r.status_code == 200, r.text
            session = r.headers["mcp-session-id"]
            # The gateway's own id, not FastMCP's (32 hex digits), URL-safe and bounded.
            assert not re.fullmatch(r"[0-9a-f]{32}", session)
            assert re.fullmatch(r"[A-Za-z0-9_-]{60,400}", session), session
            r = rpc(http, url_b, s.key, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
            assert r.status_code == 202, r.text
            r = rpc(http, url_b, s.key, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                         "params": {"name": "echo", "arguments": {"query": "from b"}}}, session)
            assert r.status_code == 200, r.text
            assert "echo: from b" in r.text

            # Another key of the same group cannot use it, on either replica.
            group = s.admin("GET", "/api/v1/groups")[0]["id"]
            other = s.admin("POST", "/api/v1/keys", {"name": "other", "group_id": group, "scopes": ["mcp"]})["key"]
            ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
            for url in (url_a, url_b):
                r = rpc(http, url, other, ping, session)
                assert r.status_code == 404, r.text
                assert r.json()["error"]["code"] == -32600
            # An altered id is just as unknown, and says no more.
            flipped = session[:-2] + ("AA" if session[-2:] != "AA" else "BB")
            r = rpc(http, url_b, s.key, ping, flipped)
            assert r.status_code == 404
            assert r.json()["error"]["message"] == rpc(http, url_b, other, ping, session).json()["error"]["message"]
            # The owner still can.
            assert rpc(http, url_b, s.key, ping, session).status_code == 200

            # DELETE on B ends the upstream session: A then answers 404 as well.
            headers = {"authorization": f"Bearer {s.key}", "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
            r = http.delete(url_b, headers=headers)
            assert r.status_code in (200, 204), r.text
            r = rpc(http, url_a, s.key, ping, session)
            assert r.status_code == 404, r.text

        # Refusals are events (decision blocked, 404) with the reason, and log lines.
        events = s.wait_events(1, proxy=proxy["id"], status=404, decision="blocked")
        reasons = {e["error"] for e in events}
        assert "MCP session id refused: issued to another key" in reasons, reasons
        assert any("MCP session id refused" in gw.logs() for gw in (a, b))
        # Session ids hold the upstream's id: it is never logged.
        assert "mcp-session-id" not in (a.logs() + b.logs()).lower()
    finally:
        s.close()


def test_a_session_id_is_bound_to_its_proxy(mcp_setup):
    s = mcp_setup
    server = s.server([ADD])
    one = s.proxy("one", server, mcp_auto_approve=True)
    two = s.proxy("two", server, mcp_auto_approve=True)
    with httpx.Client(timeout=10) as http:
        r = rpc(http, one["url"], s.key, INIT)
        session = r.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        assert rpc(http, one["url"], s.key, ping, session).status_code == 200
        r = rpc(http, two["url"], s.key, ping, session)
        assert r.status_code == 404, r.text
        # The server-to-client stream and DELETE check it too.
        headers = {"authorization": f"Bearer {s.key}", "mcp-session-id": session, "accept": "text/event-stream"}
        assert http.get(two["url"], headers=headers).status_code == 404
        assert http.delete(two["url"], headers=headers).status_code == 404
        # A session id the gateway never issued (e.g. the upstream's own kind).
        assert rpc(http, one["url"], s.key, ping, "0123456789abcdef0123456789abcdef").status_code == 404
    events = s.wait_events(1, proxy=two["id"], status=404)
    assert any(e["error"] == "MCP session id refused: issued by another proxy" for e in events), events


def test_a_stdio_proxy_issues_and_checks_session_ids_too(mcp_setup):
    from test_mcp_stdio import stdio_spec

    s = mcp_setup
    proxy = s.admin("POST", "/api/v1/proxies", stdio_spec("local", mcp_auto_approve=True))
    url = f"http://127.0.0.1:{proxy['listen_port']}/mcp"
    group = s.admin("GET", "/api/v1/groups")[0]["id"]
    other = s.admin("POST", "/api/v1/keys", {"name": "other", "group_id": group, "scopes": ["mcp"]})["key"]
    with httpx.Client(timeout=20) as http:
        r = rpc(http, url, s.key, INIT)
        assert r.status_code == 200, r.text
        session = r.headers["mcp-session-id"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{60,400}", session), session
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 2}}}
        s.list_names(url)  # the inventory learns the tools (auto-approved)
        r = rpc(http, url, s.key, call, session)
        assert r.status_code == 200 and '"4"' in r.text.replace(" ", ""), r.text
        r = rpc(http, url, other, call, session)
        assert r.status_code == 404, r.text
