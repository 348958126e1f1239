"""Rate limits with the official openai SDK: 429 as openai.RateLimitError with
Retry-After, x-ratelimit-* headers, and one limit shared by two gateway processes
through Redis and PostgreSQL."""

import subprocess
import uuid

import openai
import pytest

from conftest import BIN, REDIS_URL, UPSTREAM_SECRET, Setup, clean_env, free_port



def client(base, key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=10)


def ask(c):
    return c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])


def redis_env():
    """Redis settings with a key prefix of this test's own."""
    return {"PORTCULLIS_REDIS_URL": REDIS_URL, "PORTCULLIS_REDIS_PREFIX": f"pcx-e2e-{uuid.uuid4().hex[:12]}"}


def test_the_sdk_sees_rate_limit_error_with_retry_after(setup):
    p = setup.proxy("limited")
    setup.admin("PATCH", f"/api/v1/keys/{setup.key_id}", {"rate_limits": {"rpm": 2}})
    c = client(p["base"], setup.key)
    for remaining in ("1", "0"):
        raw = ask(c)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert raw.parse().choices[0].message.content == "You said: hello"
    with pytest.raises(openai.RateLimitError) as caught:
        ask(c)
    e = caught.value
    assert e.status_code == 429
    assert 1 <= int(e.response.headers["retry-after"]) <= 30
    assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert e.body["type"] == "rate_limit_error" and e.body["code"] == "rate_limit_exceeded"
    assert len(setup.mock.requests()) == 2, "a refused request must not reach the provider"

    blocked = setup.wait_events(1, proxy=p["id"], decision="blocked")[0]
    assert blocked["status"] == 429 and blocked["key_id"] == setup.key_id
    metrics = setup.gw.request("GET", "/metrics").text
    assert 'portcullis_proxy_rate_limited_total{proxy="limited"} 1' in metrics


def test_group_token_limit_holds_back_after_usage(setup):
    p = setup.proxy("tokens")
    setup.admin("PATCH", f"/api/v1/groups/{setup.group}", {"rate_limits": {"tpm": 3}})
    c = client(p["base"], setup.key)
    first = ask(c)
    assert first.headers["x-ratelimit-limit-tokens"] == "3"
    assert first.parse().usage.total_tokens > 3
    with pytest.raises(openai.RateLimitError) as caught:
        ask(c)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    # Anthropic callers get Anthropic's error shape.
    r = setup.gw.request("POST", "/p/tokens/v1/messages", {"model": "claude-3-5-haiku", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                         headers={"x-api-key": setup.key})
    assert r.status == 429 and r.json["error"]["type"] == "rate_limit_error" and "retry-after" in r.headers
    assert len(setup.mock.requests()) == 1


def test_a_configured_but_unreachable_redis_stops_the_start(gateway):
    with pytest.raises(RuntimeError) as failed:
        gateway(env={"PORTCULLIS_REDIS_URL": "redis://127.0.0.1:1"})
    assert "Redis" in str(failed.value) and "PORTCULLIS_REDIS_URL" in str(failed.value)


def test_two_gateways_share_one_limit_through_redis(gateway, mock, tmp_path, pg_database):  # noqa: F811
    shared = {
        "PORTCULLIS_DATABASE_URL": pg_database,
        "PORTCULLIS_ADMIN_PASSWORD": "rl-admin-password-1",
        "PORTCULLIS_JWT_SECRET": "j" * 48,
        "PORTCULLIS_ENCRYPTION_KEY": "ab" * 32,
        **redis_env(),
    }
    a = gateway(data_dir=tmp_path / "a", env=shared)
    a.first_password = lambda: "rl-admin-password-1"
    setup = Setup(a, mock)
    setup.admin("PATCH", f"/api/v1/keys/{setup.key_id}", {"rate_limits": {"rpm": 4}})
    # No own port: each replica serves it under its gateway port, /p/shared.
    setup.proxy("shared", port=False)
    b = gateway(data_dir=tmp_path / "b", env=shared)
    clients = [client(f"{gw.base}/p/shared", setup.key) for gw in (a, b)]

    outcomes = []
    for i in range(10):
        try:
            ask(clients[i % 2])
            outcomes.append("ok")
        except openai.RateLimitError as e:
            assert "retry-after" in e.response.headers
            outcomes.append("429")
    assert outcomes.count("ok") == 4, outcomes
    assert outcomes[:4] == ["ok"] * 4, "both replicas served while the limit lasted"
    assert len(mock.requests()) == 4
    # The buckets live in Redis under the test's prefix.
    keys = subprocess.run(["redis-cli", "-u", REDIS_URL, "--scan", "--pattern", shared["PORTCULLIS_REDIS_PREFIX"] + ":rl:*"],
                          capture_output=True, text=True)
    if keys.returncode == 0:
        assert keys.stdout.strip(), "no bucket in Redis"
    assert UPSTREAM_SECRET not in "".join(a.seen + b.seen)


def test_limits_declared_in_the_file_apply_and_reload(gateway, mock, tmp_path):
    from test_config_file import write_config

    key = subprocess.run([BIN, "keys", "generate"], capture_output=True, text=True, env=clean_env(), check=True).stdout.strip()
    cfg = tmp_path / "portcullis.yaml"
    port = free_port()

    def declare(key_limits, group_limits):
        write_config(cfg, mock, port)
        text = cfg.read_text()
        text = text.replace("    scopes: [llm]\n", f"    scopes: [llm]\n    rate_limits: {key_limits}\n")
        text = text.replace("    description: declared in the file\n", f"    description: declared in the file\n    rate_limits: {group_limits}\n")
        cfg.write_text(text)

    declare("{rpm: 1}", "{tpm: 100000}")
    gw = gateway(env={"PCX_TEST_OPENAI": UPSTREAM_SECRET, "PCX_TEST_KEY": key, "PORTCULLIS_CONFIG": str(cfg)})
    c = client(f"http://127.0.0.1:{port}", key)
    raw = ask(c)
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    with pytest.raises(openai.RateLimitError):
        ask(c)

    token = gw.login()
    group = gw.request("GET", "/api/v1/groups", token=token).json[0]
    assert group["rate_limits"] == {"rpm": None, "tpm": 100000}
    declare("{rpm: 1000}", "{}")
    assert gw.request("POST", "/api/v1/config/reload", token=token).status == 200
    key_record = gw.request("GET", "/api/v1/keys", token=token).json[0]
    assert key_record["rate_limits"] == {"rpm": 1000, "tpm": None}
    assert gw.request("GET", "/api/v1/groups", token=token).json[0]["rate_limits"] == {"rpm": None, "tpm": None}
    raw = ask(c)
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert "x-ratelimit-limit-tokens" not in raw.headers
    # Declared records stay file-managed: the API refuses to change their limits.
    assert gw.request("PATCH", f"/api/v1/keys/{key_record['id']}", {"rate_limits": {"rpm": 5}}, token=token).status == 409
