"""Governed system prompts with the real binary: templates bound to a proxy and to
a group reach the mock provider rendered, in the right place, for OpenAI chat, the
Responses API and Anthropic Messages; the group's template beats the proxy's."""

import datetime
import json

import httpx
import openai
import pytest

from conftest import Setup

TEMPLATE = "You assist {{user}} from {{group}} at {{organization}} via {{proxy}}; today is {{date}}."


@pytest.fixture
def governed(gateway, mock):
    return Setup(gateway(env={"PORTCULLIS_ORGANIZATION": "Acme Corp"}), mock)


def template(s, name, content):
    r = s.gw.request("POST", "/api/v1/system-prompts", {"name": name, "content": content}, token=s.token)
    assert r.status == 201, r.text
    return r.json["id"]


def bind(s, template_id, kind, target, priority=0):
    body = {"bindings": [{"target_kind": kind, "target": target, "priority": priority}]}
    r = s.gw.request("PUT", f"/api/v1/system-prompts/{template_id}/bindings", body, token=s.token)
    assert r.status == 200, r.text
    return r.json


def sent(s):
    return json.loads(s.mock.requests()[-1]["body"])


def test_group_and_proxy_prompts_reach_the_upstream_in_every_format(governed):
    s = governed
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    oai = s.proxy("oai")
    claude = s.proxy("claude", provider="anthropic")

    # Unknown variables are refused at creation, naming them.
    r = s.gw.request("POST", "/api/v1/system-prompts", {"name": "typo", "content": "Hi {{usr}}"}, token=s.token)
    assert r.status == 422 and "{{usr}}" in r.text, r.text

    proxy_wide = template(s, "proxy-wide", "Proxy policy for {{proxy}}.")
    team = template(s, "team", TEMPLATE)
    view = bind(s, proxy_wide, "proxy", "oai", priority=100)
    assert view["bindings"][0]["target_name"] == "oai"
    bind(s, team, "group", "app-team", priority=1)
    expected = f"You assist alice@example.com from app-team at Acme Corp via oai; today is {today}."

    # OpenAI chat completions through the official SDK: a system message first.
    c = openai.OpenAI(base_url=oai["base"] + "/v1", api_key=s.key, max_retries=0, timeout=10)
    reply = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "client rules"}, {"role": "user", "content": "hello"}],
        extra_headers={"x-portcullis-user": "alice@example.com"},
    )
    assert reply.choices[0].message.content == "You said: hello"
    assert sent(s)["messages"] == [
        {"role": "system", "content": expected},
        {"role": "system", "content": "client rules"},
        {"role": "user", "content": "hello"},
    ]

    # Streaming works the same way, and the SDK's `user` names the end user.
    chunks = list(c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, user="bob"))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "You said: hi"
    assert sent(s)["messages"][0]["content"] == expected.replace("alice@example.com", "bob")

    # Responses API: instructions, governed text first, then the client's.
    resp = c.responses.create(model="gpt-4o", input="summarise", instructions="Be terse.",
                              extra_headers={"x-portcullis-user": "alice@example.com"})
    assert resp.output_text == "You said: summarise"
    body = sent(s)
    assert body["instructions"] == expected + "\n\nBe terse."
    assert body["input"] == "summarise"

    # Anthropic Messages over plain HTTP: a text block first, the client's kept.
    r = httpx.post(claude["base"] + "/v1/messages", timeout=10, json={
        "model": "claude-sonnet-4-5", "max_tokens": 64,
        "system": [{"type": "text", "text": "client block"}],
        "messages": [{"role": "user", "content": "bonjour"}],
    }, headers={"x-api-key": s.key, "anthropic-version": "2023-06-01", "x-portcullis-user": "alice@example.com"})
    assert r.status_code == 200, r.text
    assert sent(s)["system"] == [
        {"type": "text", "text": expected.replace("via oai", "via claude")},
        {"type": "text", "text": "client block"},
    ]

    # The dry run shows the same choice and the resulting body, sending nothing.
    before = len(s.mock.requests())
    dry = s.admin("POST", "/api/v1/system-prompts/dry-run", {
        "proxy": "oai", "key": s.key_id, "user": "alice@example.com", "endpoint": "chat_completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    })
    assert dry["applied"] is True and dry["template"]["name"] == "team"
    assert dry["binding"]["target_kind"] == "group" and "group" in dry["reason"]
    assert [b["target_name"] for b in dry["considered"]] == ["app-team", "oai"]
    assert dry["body"]["messages"][0] == {"role": "system", "content": expected}
    assert len(s.mock.requests()) == before

    # Without the group's binding the proxy's template applies.
    s.admin("PUT", f"/api/v1/system-prompts/{team}/bindings", {"bindings": []})
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
    assert sent(s)["messages"][0] == {"role": "system", "content": "Proxy policy for oai."}
    # Embeddings carry no system prompt and go through untouched.
    c.embeddings.create(model="text-embedding-3-small", input="x")
    assert "messages" not in sent(s) and "instructions" not in sent(s)

    # Every change is in the audit chain.
    audit = s.admin("GET", "/api/v1/audit?action=system_prompt.")["entries"]
    actions = sorted(e["action"] for e in audit)
    assert actions == ["system_prompt.bindings"] * 3 + ["system_prompt.create"] * 2
    assert s.admin("GET", "/api/v1/audit/verify")["intact"] is True


def test_prompts_survive_a_restart_and_skip_policy_scanning(gateway, mock, tmp_path):
    s = Setup(gateway(), mock)
    s.admin("POST", "/api/v1/policies", {
        "name": "codenames", "description": "", "rules": [{
            "id": "CODE-001", "name": "codename", "category": "confidential", "severity": "critical",
            "action": "block", "applies_to": ["request"], "owasp": "LLM02:2025", "patterns": ["\\bbluebird\\b"],
            "examples": {"positive": ["bluebird"], "negative": ["blue bird"]},
        }],
    })
    p = s.proxy("guarded", policies=["codenames"])
    tid = template(s, "secrecy", "Never reveal the bluebird project to {{user}}.")
    bind(s, tid, "proxy", "guarded")
    c = openai.OpenAI(base_url=p["base"] + "/v1", api_key=s.key, max_retries=0, timeout=10)
    # The governed text names the codename; it is trusted, not scanned.
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], user="carol")
    assert sent(s)["messages"][0]["content"] == "Never reveal the bluebird project to carol."
    # The client's text still is.
    with pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "tell me about bluebird"}])

    # After a restart the snapshot is loaded from the store before proxies start.
    s.gw.stop()
    gw2 = gateway(data_dir=s.gw.data_dir)
    s2 = Setup.__new__(Setup)
    s2.gw, s2.mock, s2.key = gw2, mock, s.key
    s2.token = gw2.login(password=s.gw.first_password())
    c2 = openai.OpenAI(base_url=p["base"] + "/v1", api_key=s.key, max_retries=0, timeout=10)
    c2.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], user="dave")
    assert sent(s2)["messages"][0]["content"] == "Never reveal the bluebird project to dave."
