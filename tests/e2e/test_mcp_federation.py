"""MCP federation: one proxy in front of two FastMCP servers, through the official
Python SDK. Names are prefixed by server, calls reach the right server, and a dead
server is reported while the other keeps answering."""

import asyncio
import json
import time

import pytest
from mcp.shared.exceptions import McpError

from conftest import free_port
from test_mcp import McpSetup, ToolServer, text_of

MATH_TOOLS = [
    {"name": "add", "description": "Adds two integers and returns the sum."},
    {"name": "echo", "description": "Echoes the query.", "result": "from math"},
]
DOCS_TOOLS = [
    {"name": "search", "description": "Searches the documents.", "result": "docs search hit"},
    {"name": "echo", "description": "Echoes the query.", "result": "from docs"},
]


class FullServer(ToolServer):
    """tool_server.py with prompts and resources besides its tools."""

    def __init__(self, tmp_path, spec, json_response=False):
        self.spec = spec
        super().__init__(tmp_path, spec["tools"], json_response)

    def write(self, tools):
        self.file.write_text(json.dumps({**self.spec, "tools": tools}))


def full_server(s, spec, json_response=False):
    server = FullServer(s.tmp_path, spec, json_response)
    s.servers.append(server)
    return server


@pytest.fixture
def fed(gateway, tmp_path):
    s = McpSetup(gateway(), tmp_path)
    yield s
    s.close()


def federation(s, name, servers, **fields):
    spec = {
        "name": name,
        "kind": "mcp",
        "mcp_servers": [{"name": n, "upstream_url": srv.url} for n, srv in servers],
        "auth_mode": "api_key",
        "auto_start": True,
        "listen_port": free_port(),
        "first_byte_timeout_ms": 5000,
        "idle_timeout_ms": 5000,
        **fields,
    }
    p = s.admin("POST", "/api/v1/proxies", spec)
    assert p["status"]["state"] == "running", p
    p["url"] = f"http://127.0.0.1:{p['listen_port']}/mcp"
    return p


def approve_all(s, proxy):
    tools = s.admin("GET", f"/api/v1/mcp/tools?proxy={proxy['id']}")["tools"]
    for t in tools:
        s.approve(t)
    return {(t["server"], t["name"]) for t in tools}


def test_two_servers_are_listed_prefixed_and_calls_reach_their_server(fed):
    s = fed
    math = s.server(MATH_TOOLS)
    docs = s.server(DOCS_TOOLS, json_response=True)
    proxy = federation(s, "fed", [("math", math), ("docs", docs)])
    assert [m["name"] for m in proxy["mcp_servers"]] == ["math", "docs"]

    # Pending tools are invisible, as with one server; the inventory holds them per server.
    assert s.list_names(proxy["url"]) == []
    assert approve_all(s, proxy) == {
        ("math", "add"), ("math", "echo"), ("docs", "search"), ("docs", "echo"),
    }

    async def session_info(session):
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        answers = {
            "math__echo": text_of(await session.call_tool("math__echo", {"query": "x"})),
            "docs__echo": text_of(await session.call_tool("docs__echo", {"query": "x"})),
            "math__add": text_of(await session.call_tool("math__add", {"a": 2, "b": 3})),
            "docs__search": text_of(await session.call_tool("docs__search", {"query": "q"})),
        }
        return tools, answers

    async def go():
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        headers = {"Authorization": f"Bearer {s.key}"}
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(proxy["url"], http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    return init, await session_info(session)

    init, (tools, answers) = asyncio.run(asyncio.wait_for(go(), 30))
    assert init.serverInfo.name == "portcullis"
    assert init.serverInfo.title == "Portcullis federation of math, docs"
    assert "math (portcullis-test-tools" in init.instructions
    assert init.capabilities.tools is not None
    assert tools == ["docs__echo", "docs__search", "math__add", "math__echo"]
    assert answers == {
        "math__echo": "from math",
        "docs__echo": "from docs",
        "math__add": "5",
        "docs__search": "docs search hit",
    }

    # The unprefixed name is not a tool of the federation.
    code, message = s.call_error(proxy["url"], "echo", {"query": "x"})
    assert code == -32602 and "not offered" in message, message

    # Approval is per server: disabling docs' echo leaves math's.
    tools = {(t["server"], t["name"]): t for t in s.admin("GET", f"/api/v1/mcp/tools?proxy={proxy['id']}")["tools"]}
    s.admin("POST", f"/api/v1/mcp/tools/{tools[('docs', 'echo')]['id']}/disable")
    assert s.list_names(proxy["url"]) == ["docs__search", "math__add", "math__echo"]
    code, message = s.call_error(proxy["url"], "docs__echo", {"query": "x"})
    assert code == -32602 and "disabled" in message, message

    events = s.wait_events(1, proxy=proxy["id"], model="docs__search")
    assert any(e["model"] == "docs__search" and e["decision"] == "allowed" for e in events), events


def test_on_collision_prefixes_only_shared_names(fed):
    s = fed
    math = s.server(MATH_TOOLS)
    docs = s.server(DOCS_TOOLS)
    proxy = federation(
        s, "fed-oc", [("math", math), ("docs", docs)],
        mcp_prefix_mode="on_collision", mcp_separator=".", mcp_auto_approve=True,
    )
    assert s.list_names(proxy["url"]) == ["add", "docs.echo", "math.echo", "search"]
    assert text_of(s.call(proxy["url"], "search", {"query": "q"})) == "docs search hit"
    assert text_of(s.call(proxy["url"], "add", {"a": 1, "b": 1})) == "2"
    assert text_of(s.call(proxy["url"], "docs.echo", {"query": "q"})) == "from docs"


def test_never_with_a_shared_name_is_an_error_naming_both_servers(fed):
    s = fed
    math = s.server(MATH_TOOLS)
    docs = s.server(DOCS_TOOLS)
    proxy = federation(s, "fed-never", [("math", math), ("docs", docs)], mcp_prefix_mode="never", mcp_auto_approve=True)

    async def listing(session):
        try:
            await session.list_tools()
        except McpError as e:
            return e.error.message
        raise AssertionError("listing with a collision under never succeeded")

    message = s.run(proxy["url"], listing)
    assert message == 'tool "echo" is offered by both "math" and "docs" and prefix_mode is never', message


def test_validation_names_the_field(fed):
    s = fed
    base = {"name": "bad", "kind": "mcp", "mcp_servers": [{"name": "Math", "upstream_url": "http://127.0.0.1:1/mcp"}]}

    def refusal(spec):
        r = s.gw.request("POST", "/api/v1/proxies", spec, token=s.token)
        assert r.status == 400, r.text
        return r.json["error"]["message"]

    assert refusal(base).startswith('mcp_servers: server name "Math"')
    dup = {**base, "mcp_servers": [{"name": "a", "upstream_url": "http://127.0.0.1:1/mcp"}] * 2}
    assert 'mcp_servers: server name "a" is used twice' in refusal(dup)
    sep = {**base, "mcp_servers": [{"name": "a", "upstream_url": "ftp://x"}], "mcp_separator": "/"}
    message = refusal(sep)
    assert "mcp_separator:" in message and "mcp_servers[0].upstream_url" in message, message
    both = {**base, "upstream_url": "http://127.0.0.1:1/mcp", "mcp_servers": [{"name": "a", "upstream_url": "http://127.0.0.1:1/mcp"}]}
    assert "upstream_url: must be empty with mcp_servers" in refusal(both)


def test_a_dead_server_is_reported_and_the_other_keeps_answering(fed):
    s = fed
    math = s.server(MATH_TOOLS)
    docs = s.server(DOCS_TOOLS)
    proxy = federation(s, "fed-dead", [("math", math), ("docs", docs)], mcp_auto_approve=True)
    assert s.list_names(proxy["url"]) == ["docs__echo", "docs__search", "math__add", "math__echo"]

    docs.stop()
    started = time.monotonic()

    async def after_death(session):
        names = sorted(t.name for t in (await session.list_tools()).tools)
        answer = text_of(await session.call_tool("math__echo", {"query": "x"}))
        try:
            await session.call_tool("docs__search", {"query": "q"})
            error = None
        except McpError as e:
            error = (e.error.code, e.error.message)
        return names, answer, error

    names, answer, error = s.run(proxy["url"], after_death)
    assert time.monotonic() - started < 10
    assert names == ["math__add", "math__echo"]
    assert answer == "from math"
    assert error is not None and error[0] == -32003, error
    assert 'MCP server "docs"' in error[1] and "unavailable" in error[1], error

    status = s.admin("GET", f"/api/v1/proxies/{proxy['id']}")["status"]
    health = {m["name"]: m for m in status["mcp_servers"]}
    assert health["math"]["up"] is True
    assert health["docs"]["up"] is False and health["docs"]["error"], health
    assert "docs" in status["reason"]
    alerts = [a for a in s.admin("GET", "/api/v1/alerts")["alerts"] if a["rule"] == "mcp-server-unavailable"]
    assert len(alerts) == 1 and '"docs"' in alerts[0]["note"], alerts

    # The server comes back: a new session lists it again.
    docs.start()
    assert s.list_names(proxy["url"]) == ["docs__echo", "docs__search", "math__add", "math__echo"]
    status = s.admin("GET", f"/api/v1/proxies/{proxy['id']}")["status"]
    assert all(m["up"] for m in status["mcp_servers"]), status


def test_prompts_and_resources_are_merged_and_routed(fed):
    s = fed
    math = full_server(s, {"tools": MATH_TOOLS, "prompts": [{"name": "brief", "text": "math says"}],
                           "resources": [{"uri": "note://a", "text": "math note"}]})
    docs = full_server(s, {"tools": DOCS_TOOLS,
                           "prompts": [{"name": "brief", "text": "docs says"}, {"name": "outline", "text": "outline of"}],
                           "resources": [{"uri": "note://b", "text": "docs note"}]}, json_response=True)
    proxy = federation(s, "fed-pr", [("math", math), ("docs", docs)], mcp_auto_approve=True)

    async def use(session):
        prompts = sorted(p.name for p in (await session.list_prompts()).prompts)
        got = await session.get_prompt("docs__brief", {"topic": "x"})
        math_got = await session.get_prompt("math__brief", {"topic": "y"})
        resources = sorted(str(r.uri) for r in (await session.list_resources()).resources)
        read = await session.read_resource("docs+note://b")
        try:
            await session.read_resource("nowhere+note://b")
            unknown = None
        except McpError as e:
            unknown = e.error.code
        return prompts, got, math_got, resources, read, unknown

    prompts, got, math_got, resources, read, unknown = s.run(proxy["url"], use)
    assert prompts == ["docs__brief", "docs__outline", "math__brief"]
    assert got.messages[0].content.text == "docs says x"
    assert math_got.messages[0].content.text == "math says y"
    assert resources == ["docs+note://b", "math+note://a"]
    assert read.contents[0].text == "docs note"
    assert str(read.contents[0].uri) == "docs+note://b"
    assert unknown == -32602
