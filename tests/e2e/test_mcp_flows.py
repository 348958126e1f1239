"""Toxic flows: what an MCP session has read decides what it may call next. The
official Python SDK client through the gateway to a FastMCP server whose tools carry
MCP annotations (and one the proxy labels itself)."""

import time

from mcp.shared.exceptions import McpError

from test_mcp import mcp_setup  # noqa: F401  (the fixture)

TOOLS = [
    # Reads the open web: untrusted_source (readOnlyHint + openWorldHint).
    {"name": "fetch_page", "description": "Fetches a web page.", "result": "The page says hello.",
     "annotations": {"readOnlyHint": True, "openWorldHint": True}},
    # Writes to the open world: external_sink.
    {"name": "send_email", "description": "Sends an e-mail.", "result": "sent",
     "annotations": {"readOnlyHint": False, "openWorldHint": True}},
    # Destroys: destructive.
    {"name": "delete_file", "description": "Deletes a file.", "result": "deleted",
     "annotations": {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": False}},
    # No annotations: labelled private_data by the proxy's mcp_tool_labels.
    {"name": "read_db", "description": "Reads the customer table.", "result": "3 rows"},
    {"name": "add", "description": "Adds two integers and returns the sum."},
]


def session_calls(s, url, calls):
    """Runs `calls` (tool, args) in one SDK session; each outcome is "ok" or the
    JSON-RPC error as (code, message)."""

    async def run(session):
        out = []
        for name, args in calls:
            try:
                result = await session.call_tool(name, args)
                out.append("ok" if not result.isError else ("tool error", str(result.content)))
            except McpError as e:
                out.append((e.error.code, e.error.message))
        return out

    return s.run(url, run)


def q(name):
    return (name, {"a": 1, "b": 2} if name == "add" else {"query": "x"})


def test_untrusted_results_stop_sinks_and_destruction_in_their_session(mcp_setup):
    s = mcp_setup
    server = s.server(TOOLS)
    proxy = s.proxy("flows", server, mcp_auto_approve=True, mcp_tool_labels={"read_*": ["private_data"]})
    assert s.list_names(proxy["url"]) == sorted(t["name"] for t in TOOLS)

    outcomes = session_calls(s, proxy["url"], [
        q("send_email"),   # nothing read yet
        q("add"),          # no labels
        q("fetch_page"),   # the session now holds untrusted content
        q("fetch_page"),   # reading more is fine
        q("send_email"),   # an injected instruction could be sending data out
        q("delete_file"),  # ...or destroying it
        q("add"),          # unlabelled tools still work
    ])
    assert outcomes[:4] == ["ok"] * 4, outcomes
    for refused in outcomes[4:6]:
        code, message = refused
        assert code == -32001, refused
        assert "toxic flow" in message and '"fetch_page"' in message and "untrusted_source" in message, message
    assert outcomes[6] == "ok", outcomes

    # Another session starts clean.
    assert session_calls(s, proxy["url"], [q("send_email")]) == ["ok"]

    blocked = s.wait_events(2, proxy=proxy["id"], decision="blocked")
    assert {e["model"] for e in blocked} == {"send_email", "delete_file"}, blocked
    finding = next(f for f in blocked[0]["findings"] if f["rule"] == "mcp-toxic-flow")
    assert finding["action"] == "block" and finding["after"] == ["fetch_page"], finding
    alerts = poll(lambda: s.admin("GET", f"/api/v1/alerts?rule=mcp-toxic-flow&proxy={proxy['id']}")["alerts"], 2)
    assert {a["action"] for a in alerts} == {"block"}, alerts
    assert all(a["key_id"] == s.key_id and a["location"] == "tool_call" for a in alerts), alerts


def test_private_data_to_a_sink_is_reported_and_rules_are_the_proxys(mcp_setup):
    s = mcp_setup
    server = s.server(TOOLS)
    proxy = s.proxy("private", server, mcp_auto_approve=True, mcp_tool_labels={"read_*": ["private_data"]})
    s.list_names(proxy["url"])

    # The default rule for private data only alerts: the call goes through.
    assert session_calls(s, proxy["url"], [q("read_db"), q("send_email")]) == ["ok", "ok"]
    alerts = poll(lambda: s.admin("GET", f"/api/v1/alerts?rule=mcp-toxic-flow&proxy={proxy['id']}")["alerts"], 1)
    assert [a["action"] for a in alerts] == ["alert"], alerts
    allowed = [e for e in s.events(proxy=proxy["id"]) if e["model"] == "send_email"]
    assert allowed and allowed[0]["decision"] == "allowed", allowed

    # The proxy's own rules replace the defaults: now private data may not leave...
    rules = [{"after": ["private_data"], "call": "external_sink", "action": "block"}]
    s.admin("PATCH", f"/api/v1/proxies/{proxy['id']}", {"mcp_flow_rules": rules})
    outcomes = session_calls(s, proxy["url"], [q("read_db"), q("send_email"), q("fetch_page"), q("delete_file")])
    assert outcomes[0] == "ok" and outcomes[1][0] == -32001, outcomes
    # ...while untrusted content before destruction is no longer a rule.
    assert outcomes[2:] == ["ok", "ok"], outcomes

    # No rules at all, and labels the operator takes away.
    s.admin("PATCH", f"/api/v1/proxies/{proxy['id']}", {"mcp_flow_rules": []})
    assert session_calls(s, proxy["url"], [q("read_db"), q("send_email")]) == ["ok", "ok"]
    s.admin("PATCH", f"/api/v1/proxies/{proxy['id']}", {"mcp_flow_rules": None, "mcp_tool_labels": {"fetch_page": []}})
    assert session_calls(s, proxy["url"], [q("fetch_page"), q("send_email")]) == ["ok", "ok"]

    # Bad settings are refused, naming the field.
    r = s.gw.request("PATCH", f"/api/v1/proxies/{proxy['id']}", {"mcp_flow_rules": [{"after": [], "call": "destructive"}]}, token=s.token)
    assert r.status in (400, 422) and "mcp_flow_rules[0].after" in r.text, r.text
    r = s.gw.request("PATCH", f"/api/v1/proxies/{proxy['id']}", {"mcp_tool_labels": {"x": ["secret_stuff"]}}, token=s.token)
    assert r.status == 400 and "mcp_tool_labels" in r.text, r.text
    shown = s.admin("GET", f"/api/v1/proxies/{proxy['id']}")
    assert shown["mcp_tool_labels"] == {"fetch_page": []} and "mcp_flow_rules" not in shown, shown


def poll(fetch, n, timeout=5):
    deadline = time.time() + timeout
    while True:
        items = fetch()
        if len(items) >= n or time.time() > deadline:
            return items
        time.sleep(0.1)

