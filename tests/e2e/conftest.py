"""Fixtures that run the real `portcullis` binary on loopback."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BIN = os.environ.get("PCX_BIN") or str(Path.home() / ".cache/portcullis/target/debug/portcullis")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The process environment without PORTCULLIS_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(extra or {})
    return env


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None


class Gateway:
    """One `portcullis serve` process with its own data dir and port."""

    def __init__(self, data_dir, env=None, args=()):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.args = list(args)
        self.proc = None
        self.stdout_path = self.data_dir.parent / f"stdout-{self.port}.log"
        self.stderr_path = self.data_dir.parent / f"stderr-{self.port}.log"
        self.seen = []  # every response body, to search for leaked secrets

    def start(self):
        self.stdout = open(self.stdout_path, "w")
        self.stderr = open(self.stderr_path, "w")
        cmd = [BIN, "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=self.stderr, env=clean_env(self.env))
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.stderr_path.read_text()}")
            try:
                if self.request("GET", "/readyz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("gateway did not become ready")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        for f in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if f:
                f.close()
        return self.proc.returncode

    def output(self):
        return self.stdout_path.read_text()

    def logs(self):
        return self.stderr_path.read_text()

    def first_password(self):
        m = re.search(r"password:\s+(\S+)", self.output())
        return m.group(1) if m else None

    def request(self, method, path, body=None, token=None, headers=None):
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("content-type", "application/json")
        if token:
            hdrs["authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            # Generous: on a loaded 2-core machine a debug build can take seconds.
            with urllib.request.urlopen(req, timeout=30) as r:
                resp = Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            resp = Response(e.code, e.headers, e.read())
        self.seen.append(resp.text)
        return resp

    def login(self, username="admin", password=None):
        r = self.request("POST", "/api/v1/auth/login", {"username": username, "password": password or self.first_password()})
        assert r.status == 200, r.text
        return r.json["token"]


@pytest.fixture
def gateway(tmp_path):
    started = []

    def make(data_dir=None, env=None, args=()):
        gw = Gateway(data_dir or tmp_path / "data", env=env, args=args)
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop(sig=signal.SIGKILL) if gw.proc and gw.proc.poll() is None else None


def run_cli(*args, data_dir, env=None, input=None):
    return subprocess.run([BIN, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, env=clean_env(env), input=input, timeout=60)


MOCK_BIN = os.environ.get("PCX_MOCK_BIN") or str(Path(BIN).parent / "mock-upstream")


class Mock:
    """The mock LLM provider, as a separate process."""

    def __init__(self, tmp_path, expected_key=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [MOCK_BIN, "--listen", f"127.0.0.1:{self.port}"]
        if expected_key:
            args += ["--expected-key", expected_key]
        self.log = open(tmp_path / f"mock-{self.port}.log", "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        assert "listening" in line, f"mock-upstream did not start: {line!r}"

    def requests(self):
        with urllib.request.urlopen(self.base + "/__mock/requests", timeout=5) as r:
            return json.loads(r.read())

    def clear(self):
        urllib.request.urlopen(urllib.request.Request(self.base + "/__mock/requests", method="DELETE"), timeout=5).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


UPSTREAM_SECRET = "sk-upstream-provider-secret-4242"


@pytest.fixture
def mock(tmp_path):
    m = Mock(tmp_path, expected_key=UPSTREAM_SECRET)
    yield m
    m.stop()


class Setup:
    """A gateway with a group, a key, a credential and helpers to add proxies."""

    def __init__(self, gw, mock):
        self.gw = gw
        self.mock = mock
        self.token = gw.login()
        self.group = self.admin("POST", "/api/v1/groups", {"name": "app-team"})["id"]
        created = self.admin("POST", "/api/v1/keys", {"name": "app", "group_id": self.group})
        self.key = created["key"]
        self.key_id = created["api_key"]["id"]
        self.openai_cred = self.admin("POST", "/api/v1/credentials", {"name": "openai", "provider": "openai", "secret": UPSTREAM_SECRET})["id"]
        self.anthropic_cred = self.admin("POST", "/api/v1/credentials", {"name": "anthropic", "provider": "anthropic", "secret": UPSTREAM_SECRET})["id"]

    def admin(self, method, path, body=None, expect=None):
        r = self.gw.request(method, path, body, token=self.token)
        if expect is not None:
            assert r.status == expect, r.text
        else:
            assert r.status < 300, r.text
        return r.json

    def proxy(self, name, provider="openai", port=True, **fields):
        spec = {
            "name": name,
            "provider": provider,
            "upstream_url": self.mock.base,
            "credential_id": self.anthropic_cred if provider == "anthropic" else self.openai_cred,
            "auto_start": True,
            **fields,
        }
        if port:
            spec["listen_port"] = free_port()
        p = self.admin("POST", "/api/v1/proxies", spec)
        assert p["status"]["state"] == "running", p
        p["base"] = f"http://127.0.0.1:{p['listen_port']}" if port else f"{self.gw.base}/p/{name}"
        return p

    def events(self, **query):
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        deadline = time.time() + 5
        while True:
            page = self.admin("GET", f"/api/v1/events?{qs}")
            if page["events"] or time.time() > deadline:
                return page["events"]
            time.sleep(0.1)

    def wait_events(self, n, **query):
        deadline = time.time() + 5
        while time.time() < deadline:
            events = self.events(**query)
            if len(events) >= n:
                return events
            time.sleep(0.1)
        raise AssertionError(f"fewer than {n} events: {events}")


@pytest.fixture
def setup(gateway, mock):
    return Setup(gateway(), mock)


PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def pg_database():
    """A throwaway PostgreSQL database, dropped afterwards."""
    import uuid

    name = f"pcx_e2e_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", PG_ADMIN_URL, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    subprocess.run(["psql", PG_ADMIN_URL, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def wait_for_port(proc, port, log_path, timeout=20):
    """Waits until `proc` (a server being started) accepts connections on `port`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, Path(log_path).read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")
