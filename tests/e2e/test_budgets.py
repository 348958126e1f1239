"""Prices, budgets and usage with the official openai SDK: costs in events, a
budget refusing with 402 before the provider is called, warn mode, and two
gateways on one PostgreSQL database and one Redis keeping one budget."""

import time

import httpx
import openai
import pytest

from conftest import REDIS_URL, UPSTREAM_SECRET

MODEL = "e2e-priced-model"


def client(base, key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=10)


def ask(base, key, text="how much does this cost?"):
    return client(base, key).chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": text}]
    )


def price_and_budget(admin, group, limit, enforcement="block"):
    # $1,000 per million tokens: a short request costs a couple of cents.
    admin("PUT", f"/api/v1/pricing/{MODEL}", {"input": 1000, "output": 1000})
    return admin("POST", "/api/v1/budgets", {
        "scope": "group", "target_id": group, "limit_usd": limit, "warn_percent": 50, "enforcement": enforcement,
    })


def settled(admin, budget_id):
    deadline = time.time() + 5
    while True:
        view = admin("GET", f"/api/v1/budgets/{budget_id}")
        if view["status"]["reserved_usd"] == 0 or time.time() > deadline:
            return view
        time.sleep(0.02)


def test_a_spent_budget_is_a_402_api_error_and_costs_are_recorded(setup):
    p = setup.proxy("paid", port=False)
    budget = price_and_budget(setup.admin, setup.group, 0.05)
    assert budget["status"]["state"] == "ok" and budget["target_name"] == "app-team"

    admitted = 0
    with pytest.raises(openai.APIStatusError) as refused:
        for _ in range(30):
            raw = ask(p["base"], setup.key)
            assert raw.headers["x-portcullis-budget"].split(";")[0] in ("ok", "warning")
            admitted += 1
            settled(setup.admin, budget["id"])
    err = refused.value
    assert err.status_code == 402
    assert err.response.json()["error"]["code"] == "budget_exceeded"
    assert "budget is used up" in err.message
    assert admitted >= 2
    assert len(setup.mock.requests()) == admitted, "refused requests never reach the provider"

    # Streams are charged too: the same budget, now exceeded, refuses a stream.
    with pytest.raises(openai.APIStatusError) as refused:
        client(p["base"], setup.key).chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": "stream?"}]
        )
    assert refused.value.status_code == 402

    # Anthropic clients get their own error type.
    r = httpx.post(p["base"] + "/v1/messages", headers={"x-api-key": setup.key}, json={
        "model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
    })
    assert r.status_code == 402 and r.json()["error"]["type"] == "billing_error"

    # Refused: the loop's last request, the stream and the Anthropic request.
    events = setup.wait_events(admitted + 3, proxy=p["id"])
    allowed = [e for e in events if e["status"] == 200]
    assert len(allowed) == admitted
    assert all(e["cost_usd"] > 0 for e in allowed)
    view = settled(setup.admin, budget["id"])
    assert view["status"]["state"] == "exceeded"
    assert view["status"]["spent_usd"] == pytest.approx(sum(e["cost_usd"] for e in allowed))

    usage = setup.admin("GET", "/api/v1/usage?group_by=group,model")
    row = usage["rows"][0]
    assert row["group_id"] == setup.group and row["model"] == MODEL
    assert row["requests"] == admitted + 3 and row["blocked"] == 3
    assert row["cost_usd"] == pytest.approx(view["status"]["spent_usd"])


def test_a_warn_budget_passes_with_a_header_and_raises_one_alert(setup):
    p = setup.proxy("warned", port=False)
    budget = price_and_budget(setup.admin, setup.group, 0.03, enforcement="warn")
    states = []
    for _ in range(6):
        raw = ask(p["base"], setup.key)
        assert raw.parse().choices[0].message.content
        states.append(raw.headers["x-portcullis-budget"].split(";")[0])
        settled(setup.admin, budget["id"])
    assert states[0] == "ok" and states[-1] == "exceeded", states
    assert len(setup.mock.requests()) == 6
    deadline = time.time() + 5
    while time.time() < deadline:
        alerts = setup.admin("GET", "/api/v1/alerts?rule=BUDGET-WARNING")["alerts"]
        if alerts:
            break
        time.sleep(0.05)
    assert len(alerts) == 1 and alerts[0]["group_id"] == setup.group


def test_two_gateways_sharing_postgres_and_redis_keep_one_budget(gateway, mock, pg_database, tmp_path):
    env = {
        "PORTCULLIS_DATABASE_URL": pg_database,
        "PORTCULLIS_REDIS_URL": REDIS_URL,
        "PORTCULLIS_ADMIN_PASSWORD": "shared-admin-password-1",
        # Replicas share the master key and the session secret.
        "PORTCULLIS_ENCRYPTION_KEY": "ab" * 32,
        "PORTCULLIS_JWT_SECRET": "shared-jwt-secret-for-both-replicas-0123456789",
    }
    first = gateway(data_dir=tmp_path / "one", env=env)
    token = first.login(password="shared-admin-password-1")

    def admin(method, path, body=None):
        r = first.request(method, path, body, token=token)
        assert r.status < 300, r.text
        return r.json

    group = admin("POST", "/api/v1/groups", {"name": "shared-team"})["id"]
    key = admin("POST", "/api/v1/keys", {"name": "app", "group_id": group})["key"]
    cred = admin("POST", "/api/v1/credentials", {"name": "c", "provider": "openai", "secret": UPSTREAM_SECRET})["id"]
    admin("POST", "/api/v1/proxies", {
        "name": "shared", "provider": "openai", "upstream_url": mock.base, "credential_id": cred, "auto_start": True,
    })
    limit = 0.10
    budget = price_and_budget(admin, group, limit)
    # The second replica starts after the proxy and budget exist (it reads them at start).
    second = gateway(data_dir=tmp_path / "two", env=env)

    bases = [f"{first.base}/p/shared", f"{second.base}/p/shared"]
    admitted, refused_by = 0, set()
    for i in range(40):
        base = bases[i % 2]
        try:
            ask(base, key)
            admitted += 1
        except openai.APIStatusError as e:
            assert e.status_code == 402, e
            refused_by.add(base)
            if len(refused_by) == 2:
                break
        settled(admin, budget["id"])
    assert refused_by == set(bases), "both replicas refuse once the shared budget is spent"

    # Every admitted request costs the same, so one ledger admits exactly
    # ceil(limit / cost) of them; two separate ledgers would admit twice as many.
    deadline = time.time() + 5
    while time.time() < deadline:
        events = admin("GET", "/api/v1/events?status=200")["events"]
        if len(events) >= admitted:
            break
        time.sleep(0.05)
    cost = events[0]["cost_usd"]
    assert all(e["cost_usd"] == pytest.approx(cost) for e in events)
    expected = -(-limit // cost)
    assert admitted == expected, (admitted, cost)
    assert len(mock.requests()) == admitted
    view = admin("GET", f"/api/v1/budgets/{budget['id']}")
    assert view["status"]["spent_usd"] == pytest.approx(admitted * cost)
