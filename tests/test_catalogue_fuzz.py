"""Fuzzing the catalogue and the state builder behind it (hypothesis): any JSON value in any
field of any metadata document of the sample tree gives a catalogue (never an exception),
one warning naming the file and the field for a document that does not fit its record,
and a viewer state (or a clear NotFoundError) for every run.

The documents are replaced inside the tree's records (:mod:`cryoet_ng.treescan`), which is
what both a live scan and the index feed the catalogue, so no file is written per example.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryoet_ng import metadata
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.store import open_store
from cryoet_ng.treescan import Record, scan_records
from ngstate.api import NotFoundError, StateOptions, build_state

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def records(sample_root: Path) -> list[Record]:
    found, warnings = scan_records(open_store(sample_root), None, None)
    assert warnings == [] and found
    return found


def slots(records: list[Record]) -> list[tuple[int, str | None, str]]:
    """(record index, run name or None for the dataset document, document key)."""
    out: list[tuple[int, str | None, str]] = []
    for i, record in enumerate(records):
        if record["metadata"].get("doc"):
            out.append((i, None, "dataset_metadata.json"))
        for name, run in record["runs"].items():
            out += [(i, name, rel) for rel in run["docs"]]
    return out


def mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Some fields (nested ones too) replaced by any JSON value, maybe one added; or a
    document of random fields."""
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    doc = copy.deepcopy(doc)
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node))
        for key in keys:
            if data.draw(st.integers(0, 5)) == 0:
                node[key] = data.draw(json_values)
            elif isinstance(node[key], dict | list):
                stack.append(node[key])
    return doc


def parse(key: str, doc: dict[str, Any]) -> list[metadata.Problem]:
    if key.endswith("tomogram_metadata.json"):
        problem = metadata.parse_tomogram(doc)[1]
        return [problem] if problem else []
    if key.endswith("run_metadata.json"):
        problem = metadata.parse_run(doc)[1]
        return [problem] if problem else []
    if key.endswith("dataset_metadata.json"):
        problem = metadata.parse_dataset(doc)[1]
        return [problem] if problem else []
    return metadata.parse_annotation(doc)[1]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_field_value_gives_a_catalogue_warnings_and_states(
    records: list[Record], sample_root: Path, tmp_path: Path, data: st.DataObject
) -> None:
    records = json.loads(json.dumps(records))
    places = slots(records)
    chosen = data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=3, unique=True))
    changed: dict[str, dict[str, Any]] = {}
    for i, run_name, rel in chosen:
        record = records[i]
        if run_name is None:
            doc = record["metadata"]["doc"] = mutate(record["metadata"]["doc"], data)
            changed[record["metadata"]["file"][0]] = doc
        else:
            docs = record["runs"][run_name]["docs"]
            docs[rel] = mutate(docs[rel], data)
            changed[f"{record['dataset']}/{run_name}/{rel}"] = docs[rel]

    store = open_store(sample_root)
    catalogue = Catalogue.from_records(store, records, [])

    root = sample_root.resolve()
    for key, doc in changed.items():
        problems = parse(key, doc)
        about = [w.message for w in catalogue.warnings if w.path == root / key]
        for problem in problems:
            # One warning naming the file (its path) and the field (in the message).
            assert any(str(problem) in message for message in about), (key, problem, about)

    options = StateOptions(data_url="http://x/data", out_root=tmp_path, data_root=root)
    for run in catalogue.runs():
        try:
            built = build_state(catalogue, run.dataset_id, run.name, None, options)
        except NotFoundError as exc:
            assert not run.tomograms and "has no tomogram" in str(exc)
            continue
        json.dumps(built.state, allow_nan=False)  # the state itself is strict JSON
