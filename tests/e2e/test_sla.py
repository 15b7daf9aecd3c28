"""SLA policies over REST and the CLI; warnings and breaches reach agents live as ``sla`` frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import Client, Seed, Server, run_server, settings_for, visitor_token

POLICY: dict[str, Any] = {
    "name": "Urgent",
    "position": 1,
    "match": {"priority": "urgent"},
    "targets": {"first_response_s": 2},
    "warn_before_s": 1,
    "calendar": {"timezone": "Europe/Berlin"},
}


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_policies_rest_and_bad_policies_refused(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    base, admin = server.url, h(seeded.admin_token)
    assert (
        await http.post(f"{base}/api/v1/sla-policies", json=POLICY, headers=h(seeded.agent_token))
    ).status_code == 403
    for change, field in [
        ({"calendar": {}}, "calendar"),
        ({"calendar": {"timezone": "UTC", "hours": {}}}, "calendar.hours"),
        ({"calendar": {"team_id": "tm_nobody"}}, "calendar.team_id"),
        ({"match": {"team_id": "tm_nobody"}}, "match.team_id"),
        ({"targets": {"resolution_s": -60}}, "targets.resolution_s"),
        ({"targets": {}}, "targets"),
    ]:
        r = await http.post(f"{base}/api/v1/sla-policies", json={**POLICY, **change}, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["data"]["field"] == field, (change, r.text)
    assert (await http.get(f"{base}/api/v1/sla-policies", headers=admin)).json()["items"] == []
    r = await http.post(f"{base}/api/v1/sla-policies", json=POLICY, headers=admin)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["targets"] == {"first_response_s": 2}
    team = await http.post(
        f"{base}/api/v1/teams", json={"name": "Support", "timezone": "America/New_York"}, headers=admin
    )
    put = await http.put(
        f"{base}/api/v1/sla-policies/{pid}",
        json={**POLICY, "calendar": {"team_id": team.json()["id"]}, "targets": {"resolution_s": 7200}},
        headers=admin,
    )
    assert put.status_code == 200 and put.json()["calendar"] == {"team_id": team.json()["id"]}
    assert (await http.get(f"{base}/api/v1/sla-policies/{pid}", headers=h(seeded.agent_token))).json()[
        "targets"
    ] == {"resolution_s": 7200}
    bad_put = await http.put(
        f"{base}/api/v1/sla-policies/{pid}", json={**POLICY, "calendar": {}}, headers=admin
    )
    assert bad_put.status_code == 422
    assert (await http.get(f"{base}/api/v1/sla-policies/{pid}", headers=admin)).json()["targets"] == {
        "resolution_s": 7200
    }
    assert (await http.delete(f"{base}/api/v1/sla-policies/{pid}", headers=admin)).status_code == 204
    assert (await http.get(f"{base}/api/v1/sla-policies/{pid}", headers=admin)).status_code == 404
    assert (
        await http.put(f"{base}/api/v1/sla-policies/{pid}", json=POLICY, headers=admin)
    ).status_code == 404


async def test_warning_and_breach_reach_the_agent_live_and_are_recorded(
    sqlite_url: str, seeded: Seed, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    async with run_server(settings_for(sqlite_url, tmp_path, workers_in_serve=True)) as server:
        base, admin = server.url, h(seeded.admin_token)
        assert (await http.post(f"{base}/api/v1/sla-policies", json=POLICY, headers=admin)).status_code == 201
        contact = (await visitor_token(http, base, seeded.inbox_key))["contact_id"]
        async with (
            Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
            Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as supervisor,
        ):
            await agent.expect("hello")
            await supervisor.expect("hello")
            r = await http.post(
                f"{base}/api/v1/tickets",
                json={
                    "requester_id": contact,
                    "subject": "Down",
                    "priority": "urgent",
                    "assignee_id": seeded.agent_id,
                },
                headers=admin,
            )
            number = r.json()["number"]
            assert r.json()["sla"]["policy"] == "Urgent"
            assert r.json()["sla"]["targets"]["first_response"]["due_at"] is not None
            mine = await agent.expect("ticket", ticket__number=number)
            assert mine["ticket"]["assignee_id"] == seeded.agent_id
            warning = await agent.expect("sla", kind="warning", ticket__number=number, timeout=10)
            assert warning["target"] == "first_response"
            breach = await agent.expect("sla", kind="breach", ticket__number=number, timeout=10)
            assert breach["due_at"] == warning["due_at"]
            await supervisor.expect("sla", kind="breach", ticket__number=number, timeout=10)
            await agent.drain(1.5)
            repeated = [f for f in agent.frames if f["type"] == "sla" and f["ticket"]["number"] == number]
            assert [f["kind"] for f in repeated] == ["warning", "breach"]  # each once
        got = (await http.get(f"{base}/api/v1/tickets/{number}", headers=admin)).json()
        assert [e["kind"] for e in got["sla"]["events"]] == ["warning", "breach"]
        assert got["sla"]["breached"] is True
        listed = (await http.get(f"{base}/api/v1/tickets", params={"breached": "true"}, headers=admin)).json()
        assert [t["number"] for t in listed["items"]] == [number]


def test_create_sla_cli(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chatserver.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = cli("create-sla", "--json", json.dumps(POLICY))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["targets"] == {"first_response_s": 2}
    bad = cli("create-sla", "--json", json.dumps({**POLICY, "calendar": {}}))
    assert bad.returncode != 0 and "calendar" in bad.stderr
    assert cli("create-sla", "--json", "{not json").returncode != 0
