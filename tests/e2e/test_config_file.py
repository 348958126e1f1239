"""Resources declared in the configuration file: applied at start, file-managed in
the API, reloaded on SIGHUP and through the API, invalid files refused whole."""

import signal
import subprocess
import time

import openai

from conftest import BIN, UPSTREAM_SECRET, clean_env, free_port


def write_config(path, mock, port, proxies=("main",), extra=""):
    lines = [
        "groups:",
        "  - name: platform",
        "    description: declared in the file",
        "credentials:",
        "  - name: openai",
        "    provider: openai",
        "    secret: ${PCX_TEST_OPENAI}",
        "keys:",
        "  - name: svc",
        "    group: platform",
        "    key: ${PCX_TEST_KEY}",
        "    scopes: [llm]",
        "proxies:",
    ]
    for i, name in enumerate(proxies):
        lines += [
            f"  - name: {name}",
            "    provider: openai",
            f"    upstream_url: {mock.base}",
            "    credential: openai",
            f"    listen_port: {port + i}",
            "    auto_start: true",
        ]
    path.write_text("\n".join(lines) + "\n" + extra)


def ask(port, key, text="hi"):
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=10)
    return c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}]).choices[0].message.content


def wait_until(check, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_declared_resources_apply_and_reload(gateway, mock, tmp_path):
    key = subprocess.run([BIN, "keys", "generate"], capture_output=True, text=True, env=clean_env(), check=True).stdout.strip()
    assert key.startswith("pcx_")
    cfg = tmp_path / "portcullis.yaml"
    port = free_port()
    write_config(cfg, mock, port)
    env = {"PCX_TEST_OPENAI": UPSTREAM_SECRET, "PCX_TEST_KEY": key, "PORTCULLIS_CONFIG": str(cfg)}
    gw = gateway(env=env)
    assert ask(port, key) == "You said: hi"

    token = gw.login()
    proxies = gw.request("GET", "/api/v1/proxies", token=token).json
    assert [(p["name"], p["managed_by"]) for p in proxies] == [("main", "file")]
    assert gw.request("PATCH", f"/api/v1/proxies/{proxies[0]['id']}", {"max_body_bytes": 10}, token=token).status == 409
    cred = gw.request("GET", "/api/v1/credentials", token=token).json[0]
    assert cred["managed_by"] == "file" and cred["hint"].endswith(UPSTREAM_SECRET[-4:])
    assert gw.request("DELETE", f"/api/v1/credentials/{cred['id']}", token=token).status == 409

    # An invalid file is refused whole, every problem listed; the old one keeps serving.
    write_config(cfg, mock, port, extra="  - name: broken\n    provider: openai\n    upstream_url: ftp://nowhere\n    credential: missing\n")
    r = gw.request("POST", "/api/v1/config/reload", token=token)
    assert r.status == 400
    msg = r.json["error"]["message"]
    assert "upstream_url" in msg and "credential" in msg
    assert ask(port, key) == "You said: hi"

    # A new file through SIGHUP: a proxy added, the old one removed, the key removed (revoked).
    text = cfg.read_text()
    write_config(cfg, mock, port + 1, proxies=("second",))
    cfg.write_text(cfg.read_text().replace(text[text.index("keys:"):text.index("proxies:")], ""))
    gw.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: [p["name"] for p in gw.request("GET", "/api/v1/proxies", token=token).json] == ["second"])
    actions = [e["action"] for e in gw.request("GET", "/api/v1/audit?action=config.", token=token).json["entries"]]
    assert actions.count("config.apply") == 2 and "config.reload_refused" in actions
    try:
        ask(port + 1, key)
        raise AssertionError("the key removed from the file must stop working")
    except openai.AuthenticationError:
        pass
    assert gw.request("GET", "/api/v1/keys", token=token).json[0]["revoked_at"] is not None


def test_missing_secret_variable_stops_the_start(tmp_path, mock):
    cfg = tmp_path / "portcullis.yaml"
    write_config(cfg, mock, free_port())
    r = subprocess.run([BIN, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30, env=clean_env({"PCX_TEST_KEY": "x"}))
    assert r.returncode != 0
    assert "PCX_TEST_OPENAI is not set" in r.stderr and "keys[0].key" in r.stderr
