"""The C scanner's limits and guards: keyed hash, bounded tables, deep nesting,
the differential reference on the seed corpus, and saying which engine runs.

Scanner items run with the scanner on and off (``ROBOTMIA_FRAMES_NATIVE``): both
must read the same table. Nothing here is timed; where the old behaviour was slow
(colliding keys), the test asserts the behaviour that made it slow is gone.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import robotmia_frames as rf
from robotmia_frames.cli import main
from robotmia_frames.parse import _native, scanner_status

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

import reference  # noqa: E402

_scan: Any = _native._scan
needs_scanner = pytest.mark.skipif(_scan is None, reason="the C scanner is not built")

# The scanner's bounds (_scan.c): MAX_PROBE slots per lookup, MAX_CELLS keys x rows.
MAX_PROBE = 128
MAX_CELLS = 1 << 25


@pytest.fixture(params=["1", "0"], ids=["scanner", "python"])
def native(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", request.param)
    return str(request.param)


def _fnv1a_low(key: bytes, bits: int) -> int:
    h = 0xCBF29CE484222325
    for b in key:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h & ((1 << bits) - 1)


def fnv_colliding_keys(count: int, bits: int = 17) -> list[str]:
    """``count`` key names whose unkeyed FNV-1a hashes share their low ``bits``.

    The low bits of FNV-1a depend only on the low bits of its state. At each of 16
    positions two 3-letter blocks are found that lead the current state to the
    same next state, so they can be swapped freely: 2**16 names that all land in
    one slot of a 2**bits table (the attack of issue 15, item 13).
    """
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    letters = set(alphabet)
    mask, prime = (1 << bits) - 1, 0x100000001B3

    def step(h: int, byte: int) -> int:
        return ((h ^ byte) * prime) & mask

    state = 0xCBF29CE484222325 & mask
    pairs: list[tuple[bytes, bytes]] = []
    while len(pairs) < 16:
        # Two 2-letter prefixes whose states differ only in the low 7 bits: a
        # third letter each (c and c ^ d) then makes the states equal.
        by_top: dict[int, list[tuple[int, bytes]]] = {}
        found = None
        for a, b in itertools.product(alphabet, alphabet):
            x = step(step(state, a), b)
            for y, ab in by_top.get(x >> 7, []):
                c = next((c for c in alphabet if c ^ x ^ y in letters), None)
                if c is not None:
                    found = (ab + bytes([c ^ x ^ y]), bytes([a, b, c]), step(x, c))
                    break
            if found:
                break
            by_top.setdefault(x >> 7, []).append((x, bytes([a, b])))
        assert found is not None
        pairs.append(found[:2])
        state = found[2]
    return [b"".join(p[(i >> k) & 1] for k, p in enumerate(pairs)).decode() for i in range(count)]


def test_colliding_key_names_really_collide_without_a_key() -> None:
    keys = fnv_colliding_keys(300)
    assert len(set(keys)) == 300
    assert len({_fnv1a_low(k.encode(), 17) for k in keys}) == 1


@needs_scanner
def test_keyed_hash_keeps_probes_short_for_colliding_names() -> None:
    # Unkeyed FNV-1a put all 60k names in one probe run (a lookup visited up to
    # 60,000 slots: quadratic). Keyed per process, runs stay short.
    probe = _scan.longest_probe(fnv_colliding_keys(60_000))
    assert 1 <= probe <= 64


@needs_scanner
def test_ordinary_names_probe_short() -> None:
    assert 1 <= _scan.longest_probe([f"k{i}" for i in range(60_000)]) <= 64


@needs_scanner
def test_sixty_thousand_colliding_names_are_scanned_in_c() -> None:
    # The chunk of issue 15 (60k colliding names x 5 lines): the scanner takes it
    # itself (no key-table probe ran past its bound), and reads every key.
    keys = fnv_colliding_keys(60_000)
    props = ",".join(f'"{k}":1' for k in keys)
    chunk = "\n".join(f'{{"event":"e","properties":{{{props}}}}}' for _ in range(5)).encode()
    got = _scan.scan(chunk)
    assert got is not None
    assert got[0] == 5
    assert len(got[6]) == 60_000


def test_colliding_key_names_read_the_same_either_way(tmp_path: Path, native: str) -> None:
    keys = fnv_colliding_keys(3_000)
    lines = [
        json.dumps({"event": "e", "properties": {"time": row, **dict.fromkeys(keys, row)}})
        for row in range(5)
    ]
    path = tmp_path / "collide.jsonl"
    path.write_text("\n".join(lines) + "\n")
    table = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert table.num_rows == 5
    assert table.num_columns == 3_002
    assert table.column(f"properties.{keys[1_234]}").to_pylist() == [0, 1, 2, 3, 4]


@needs_scanner
def test_wide_chunks_are_declined_past_the_cell_bound() -> None:
    # keys x rows beyond MAX_CELLS: every column's result would be laid out over
    # every row, so the chunk goes to the Python engine instead.
    keys = 1_200
    rows = MAX_CELLS // keys + 1
    line = json.dumps({"properties": {f"k{i}": None for i in range(keys)}}).encode()
    narrow = b'{"properties":{"k0":1}}\n'
    chunk = line + b"\n" + narrow * (rows - 1)
    assert _scan.scan(chunk) is None
    assert _scan.scan(line + b"\n" + narrow * 100) is not None
    # A projection stores only the wanted keys, so it stays within the bound.
    assert _scan.scan(chunk, ["k0"]) is not None


def test_wide_file_reads_the_same_either_way(tmp_path: Path, native: str) -> None:
    # 2,000 distinct keys over 300 rows: the table's cells, not the input, set the memory.
    path = tmp_path / "wide.jsonl"
    with path.open("w") as fh:
        for row in range(300):
            props = {f"k{row * 7 + j:05d}": row for j in range(20)}
            fh.write(json.dumps({"event": "e", "properties": {"time": row, **props}}) + "\n")
    table = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert table.num_rows == 300
    assert table.column("properties.k00007").to_pylist()[:3] == [0, 1, None]


@pytest.mark.parametrize("depth", [255, 256, 300, 1_000, 100_000])
def test_deep_nesting_is_declined_not_a_crash(depth: int) -> None:
    if _scan is None:
        pytest.skip("the C scanner is not built")
    for value in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        line = b'{"event":"e","properties":{"deep":' + value + b"}}"
        got = _scan.scan(line)
        # Up to MAX_DEPTH (256) levels the scanner reads it; deeper, it declines.
        if depth + 1 > 256:
            assert got is None
        # Unterminated nesting is declined too, whatever the depth.
        assert _scan.scan(line[: len(line) // 2]) is None


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir()))
def test_seed_corpus_agrees_with_the_json_reference(name: str) -> None:
    """The differential fuzzer's check, replayed on its checked-in seed corpus."""
    if _scan is None:
        pytest.skip("the C scanner is not built")
    sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
    import fuzz_scan

    fuzz_scan.one_input((CORPUS / name).read_bytes())


def test_reference_reads_by_the_type_policy() -> None:
    chunk = (
        b'{"event":"a","properties":{"time":1,"n":1,"m":[1,2.5],"o":{"k":1e3},"s":"x"}}\n'
        b'\n{"event":null,"properties":{"n":2.5,"m":[true],"s":2}}'
    )
    got = reference.expected(chunk)
    assert got is not None
    assert got["rows"] == 2
    assert got["event"] == ["a", None]
    assert got["time"] == [1.0, None]
    assert got["columns"] == {
        "n": [1.0, 2.5],
        "m": [["1", "2.5"], ["true"]],
        "o": ['{"k":1000.0}', None],
        "s": ["x", "2"],
    }
    assert reference.expected(b'{"event":1}') is reference.MUST_DECLINE
    assert reference.expected(b'{"properties":{"a":1,"a":2}}') is reference.MUST_DECLINE
    assert reference.expected(b'{"properties":{"a":NaN}}') is reference.MUST_DECLINE


# ------------------------------------------------------------ which engine runs


def test_version_names_the_parse_engine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", "0")
    with pytest.raises(SystemExit):
        main(["--version"])
    off = "switched off" if _scan is not None else "not built"  # a missing scanner says so first
    assert f"parse engine: pure Python (the C scanner is {off}" in capsys.readouterr().out
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", "1")
    with pytest.raises(SystemExit):
        main(["--version"])
    expected = "C scanner" if _scan is not None else "the C scanner is not built"
    assert expected in capsys.readouterr().out


def test_inspect_names_the_parse_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"event":"a","properties":{"time":1700000000,"n":1}}\n')
    assert main(["inspect", str(path)]) == 0
    assert "parse engine: " in capsys.readouterr().out
    assert main(["inspect", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["parse_engine"] == scanner_status()


_WITHOUT_SCANNER = textwrap.dedent(
    """
    import sys, warnings
    sys.modules["robotmia_frames._scan"] = None  # as if it was never built
    sys.modules["robotmia_frames.parse._scan"] = None
    import robotmia_frames as rf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            rf.read_export_file(sys.argv[1], project_timezone="UTC", return_type="arrow")
    for w in caught:
        print(type(w.message).__name__, "|", w.message)
    """
)


@pytest.mark.parametrize("switch", [None, "0"])
def test_parsing_without_the_scanner_warns_once(tmp_path: Path, switch: str | None) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"event":"a","properties":{"time":1700000000,"n":1}}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ROBOTMIA_FRAMES_NATIVE", None)
    if switch is not None:
        env["ROBOTMIA_FRAMES_NATIVE"] = switch
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SCANNER, str(path)],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.splitlines()  # fmt: skip
    if switch == "0":
        assert out == []  # switched off on purpose: silent
        return
    assert len(out) == 1, out
    name, message = out[0].split(" | ", 1)
    assert name == "RobotmiaWarning"
    assert message.startswith("The C scanner of robotmia-frames is not built (")  # the cause
    assert "--only-binary=robotmia-frames" in message  # the fix
    assert "ROBOTMIA_FRAMES_NATIVE=0" in message


def test_list_and_empty_string_in_one_column() -> None:
    # Found by the fuzzer (UBSan): a column of lists and empty strings has no
    # scalar text at all, and its text column was built from a null pointer.
    if _scan is None:
        pytest.skip("the C scanner is not built")
    chunk = b'{"properties":{"b":[]}}\n{"properties":{"b":""}}\n{"properties":{"b":[1]}}'
    scanned = _native.scan_chunk(chunk, None)
    assert scanned is not None
    batch = _native.from_scan(scanned, 1, 3, "x")
    assert batch is not None
    assert batch.columns["b"].array.to_pylist() == ["[]", "", "[1]"]


def test_scan_results_are_read_only_buffers() -> None:
    if _scan is None:
        pytest.skip("the C scanner is not built")
    got = _scan.scan(b'{"event":"abc","properties":{"n":1}}')
    view = memoryview(got[2])
    assert view.readonly and bytes(view) == b"abc"
    assert pa.py_buffer(got[2]).to_pybytes() == b"abc"
    with pytest.raises(TypeError):
        type(got[2])()  # not instantiable from Python
