"""The gateway on PostgreSQL: a database of its own, state kept across restarts."""

import subprocess


def test_postgres_backend_keeps_state_across_restarts(gateway, tmp_path, pg_database):
    env = {"PORTCULLIS_DATABASE_URL": pg_database, "PORTCULLIS_ADMIN_PASSWORD": "pg-admin-password-1"}
    gw = gateway(env=env)
    assert gw.first_password() is None, "a configured admin password is not printed"
    token = gw.login(password="pg-admin-password-1")
    assert gw.request("POST", "/api/v1/groups", {"name": "pg-team"}, token=token).status == 201
    secret = "sk-pg-secret-value-77778888"
    assert gw.request("POST", "/api/v1/credentials", {"name": "c", "provider": "openai", "secret": secret}, token=token).status == 201
    assert gw.stop() == 0
    assert not (tmp_path / "data" / "portcullis.db").exists(), "no SQLite file when PostgreSQL is configured"

    gw = gateway(env=env)
    token = gw.login(password="pg-admin-password-1")
    assert [g["name"] for g in gw.request("GET", "/api/v1/groups", token=token).json] == ["pg-team"]
    assert gw.request("GET", "/api/v1/audit/verify", token=token).json["intact"] is True
    dump = subprocess.run(["psql", pg_database, "-Atc", "SELECT sealed FROM credentials"], capture_output=True, text=True, check=True).stdout
    assert dump.startswith("v1:") and secret not in dump
