"""design.md §6 "The local export server": Basic auth (the secret as user name),
gzip JSONL sorted by time, date/event/``where`` filtering in the project's
timezone, ``{"error": ...}`` bodies, and events without a day served for every range
(docs/emulator.md).
"""

from __future__ import annotations

import datetime as dt
import json

import requests

from tests.conftest import SECRET, ServerFactory

TZ = "America/Los_Angeles"


def _local(day: str, hour: int) -> int:
    moment = dt.datetime.fromisoformat(day) + dt.timedelta(hours=hour)
    return int((moment - dt.datetime(1970, 1, 1)).total_seconds())


EVENTS = [
    {"event": "b", "properties": {"time": _local("2024-03-10", 5), "n": 1}},
    {"event": "a", "properties": {"time": _local("2024-03-10", 1), "n": 2}},
    {"event": "a", "properties": {"time": _local("2024-03-11", 23), "n": 3}},
    {"event": "no day", "properties": {"time": "soon", "n": 4}},
]


def _get(url: str, auth: tuple[str, str] | None = (SECRET, ""), **params: str) -> requests.Response:
    return requests.get(url, params=params, auth=auth, timeout=30)


def _ns(response: requests.Response) -> list[int]:
    return [json.loads(line)["properties"]["n"] for line in response.text.splitlines()]


def test_contract_emulator_serves_the_documented_endpoint(server: ServerFactory) -> None:
    srv = server(EVENTS, project_timezone=TZ)
    day = _get(srv.url, from_date="2024-03-10", to_date="2024-03-10")
    assert day.status_code == 200 and day.headers["Content-Encoding"] == "gzip"
    assert _ns(day) == [2, 1, 4]  # sorted by time; the event without a day last
    assert _ns(_get(srv.url, from_date="2024-03-01", to_date="2024-03-02")) == [4]
    assert _ns(_get(srv.url, from_date="2024-03-10", to_date="2024-03-11", event='["a"]')) == [
        2,
        3,
    ]
    where = 'properties["n"] >= 2 and defined(event["$time"])'
    assert _ns(_get(srv.url, from_date="2024-03-10", to_date="2024-03-11", where=where)) == [2, 3]


def test_contract_emulator_errors_are_json(server: ServerFactory) -> None:
    srv = server(EVENTS, project_timezone=TZ)
    for response, status in [
        (_get(srv.url, auth=None, from_date="2024-03-10", to_date="2024-03-10"), 401),
        (_get(srv.url, auth=("wrong", ""), from_date="2024-03-10", to_date="2024-03-10"), 401),
        (_get(srv.url, auth=("", SECRET), from_date="2024-03-10", to_date="2024-03-10"), 401),
        (_get(srv.url, from_date="2024-03-11", to_date="2024-03-10"), 400),
        (
            _get(srv.url, from_date="2024-03-10", to_date="2024-03-10", where='properties["n"] >'),
            400,
        ),
        (_get(srv.url, from_date="2024-03-10", to_date="2024-03-10", event="a"), 400),
    ]:
        assert response.status_code == status
        assert isinstance(response.json()["error"], str)
        assert SECRET not in response.text
