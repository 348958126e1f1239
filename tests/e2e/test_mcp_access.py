"""MCP tool access through the official Python SDK: allow and deny lists on the
proxy and on groups filter both `tools/list` and `tools/call`, and per-key
per-tool rate limits refuse calls over the limit while other tools keep working."""

import pytest
from mcp.shared.exceptions import McpError

from test_mcp import ADD, McpSetup, events_until, text_of

TOOLS = [
    ADD,
    {"name": "echo", "description": "Echoes the query."},
    {"name": "search", "description": "Searches the documents.", "result": "hit"},
]


@pytest.fixture
def acc(gateway, tmp_path):
    s = McpSetup(gateway(), tmp_path)
    yield s
    s.close()


def approved_proxy(s, name, **fields):
    proxy = s.proxy(name, s.server(TOOLS), **fields)
    s.list_names(proxy["url"])  # the inventory learns the tools
    for t in s.tools(proxy).values():
        s.approve(t)
    return proxy


def refusal(s, url, name, args, key=None):
    async def call(session):
        try:
            result = await session.call_tool(name, args)
        except McpError as e:
            return e.error
        raise AssertionError(f"call of {name} was not refused: {result}")

    return s.run(url, call, key=key)


def test_a_denied_tool_is_not_listed_and_its_call_is_refused(acc):
    s = acc
    proxy = approved_proxy(s, "denying", mcp_tool_deny=["ec*"])
    assert proxy["mcp_tool_deny"] == ["ec*"]
    assert s.list_names(proxy["url"]) == ["add", "search"]
    assert text_of(s.call(proxy["url"], "add", {"a": 2, "b": 3})) == "5"

    denied = refusal(s, proxy["url"], "echo", {"query": "hi"})
    missing = refusal(s, proxy["url"], "echo2", {"query": "hi"})
    assert denied.code == -32602 and denied.message == 'tool "echo" is not available to this key'
    # A denied name that does not exist is refused the same way (nothing revealed).
    assert missing.code == -32602 and missing.message == 'tool "echo2" is not available to this key'
    assert denied.data == missing.data == {"reason": "tool_not_allowed"}

    events = events_until(
        s, lambda ev: any(e["model"] == "echo" for e in ev), proxy=proxy["id"]
    )
    blocked = [e for e in events if e["model"] == "echo"]
    assert blocked and blocked[0]["decision"] == "blocked", blocked
    assert "not available" in blocked[0]["error"], blocked

    # An allow list narrows further; deny still wins.
    s.admin("PATCH", f"/api/v1/proxies/{proxy['id']}", {"mcp_tool_allow": ["add", "echo"]})
    assert s.list_names(proxy["url"]) == ["add"]
    assert refusal(s, proxy["url"], "search", {"query": "q"}).data == {"reason": "tool_not_allowed"}


def test_a_group_allow_list_narrows_what_its_keys_see(acc):
    s = acc
    proxy = approved_proxy(s, "grouped")
    narrow = s.admin("POST", "/api/v1/groups", {"name": "narrow", "mcp_tool_allow": ["search", "a*"], "mcp_tool_deny": ["add"]})
    assert narrow["mcp_tool_allow"] == ["search", "a*"]
    key = s.admin("POST", "/api/v1/keys", {"name": "narrow-agent", "group_id": narrow["id"], "scopes": ["mcp"]})["key"]

    assert s.list_names(proxy["url"]) == ["add", "echo", "search"]

    async def names(session):
        return sorted(t.name for t in (await session.list_tools()).tools)

    assert s.run(proxy["url"], names, key=key) == ["search"]
    assert refusal(s, proxy["url"], "echo", {"query": "x"}, key=key).data == {"reason": "tool_not_allowed"}
    assert refusal(s, proxy["url"], "add", {"a": 1, "b": 2}, key=key).data == {"reason": "tool_not_allowed"}

    async def search(session):
        return text_of(await session.call_tool("search", {"query": "q"}))

    assert s.run(proxy["url"], search, key=key) == "hit"

    # Field-named validation errors.
    for body in ({"name": "bad", "mcp_tool_allow": ["a b"]}, {"name": "bad", "mcp_tool_deny": [""]}):
        r = s.gw.request("POST", "/api/v1/groups", body, token=s.token)
        assert r.status == 400 and "mcp_tool_" in r.text, r.text


def test_the_third_call_of_a_two_per_minute_tool_is_refused(acc):
    s = acc
    proxy = approved_proxy(s, "limited", mcp_tool_rate_limits={"ad*": 2})
    assert proxy["mcp_tool_rate_limits"] == {"ad*": 2}

    async def calls(session):
        out = []
        for _ in range(3):
            try:
                out.append(text_of(await session.call_tool("add", {"a": 1, "b": 1})))
            except McpError as e:
                out.append(e.error)
        out.append(text_of(await session.call_tool("echo", {"query": "still"})))
        return out

    first, second, third, echo = s.run(proxy["url"], calls)
    assert (first, second) == ("2", "2")
    assert third.code == -32004, third
    assert "rate limit" in third.message
    assert third.data["reason"] == "rate_limited"
    assert 1 <= third.data["retry_after_secs"] <= 60
    assert echo == "echo: still"

    events = events_until(
        s, lambda ev: any(e["decision"] == "blocked" for e in ev), proxy=proxy["id"]
    )
    blocked = [e for e in events if e["decision"] == "blocked"]
    assert blocked[0]["model"] == "add" and "rate limit" in blocked[0]["error"], blocked

    bad = {
        "name": "bad", "kind": "mcp", "upstream_url": "http://127.0.0.1:9/mcp",
        "mcp_tool_rate_limits": {"add": 0}, "mcp_tool_deny": ["a b"],
    }
    r = s.gw.request("POST", "/api/v1/proxies", bad, token=s.token)
    assert r.status == 400 and "mcp_tool_rate_limits" in r.text and "mcp_tool_deny[0]" in r.text, r.text


def test_federation_lists_are_on_prefixed_names(acc):
    from test_mcp_federation import DOCS_TOOLS, MATH_TOOLS, approve_all, federation

    s = acc
    math, docs = s.server(MATH_TOOLS), s.server(DOCS_TOOLS)
    proxy = federation(s, "fedacc", [("math", math), ("docs", docs)], mcp_tool_deny=["docs__*"], mcp_tool_allow=["*echo", "docs__search"])
    s.list_names(proxy["url"])
    approve_all(s, proxy)
    assert s.list_names(proxy["url"]) == ["math__echo"]
    assert text_of(s.call(proxy["url"], "math__echo", {"query": "x"})) == "from math"
    assert refusal(s, proxy["url"], "docs__search", {"query": "q"}).data == {"reason": "tool_not_allowed"}
    assert refusal(s, proxy["url"], "math__add", {"a": 1, "b": 2}).data == {"reason": "tool_not_allowed"}
