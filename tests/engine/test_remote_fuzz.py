"""Property-based fuzzing of the HTTP API against our own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid, over real HTTP to a real server
on the first engine under test. Every check schemathesis has runs: a 5xx is a bug, and so is
an answer (status, content type, body) the document does not describe.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

import containertracker
from containertracker.remote import ServerThread, TrackerPool
from containertracker.remote.app import openapi_document
from containertracker.settings import ServerSettings
from tests.conftest import SESSION_PREFIX, check_engine, engine_params, selected_engines


@pytest.fixture(scope="module")
def fuzzed_server(request: pytest.FixtureRequest, state_dir: Path) -> Iterator[str]:
    engine = selected_engines(request.config)[0]
    check_engine(engine, state_dir)
    session = f"{SESSION_PREFIX}fuzz-{uuid.uuid4().hex[:8]}"
    pool = TrackerPool.for_backend(engine, session, engine_params(engine, state_dir))
    # A short long-poll cap keeps generated /wait calls quick.
    server_settings = ServerSettings(port=0, max_wait=0.2, max_body_bytes=64 * 1024)
    with ServerThread(pool, server_settings) as url:
        yield url
    with containertracker.new_job_tracker(engine, session, engine_params(engine, state_dir)) as t:
        for job_id in t.list_jobs():
            t._engine.remove(job_id)  # type: ignore[attr-defined]


# Loaded from the package, not from the server: the document is the contract under test.
# (schemathesis' own pytest plugin does not run under pytest 9; its Python API does.)
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
# Negative data needs something to break: a required parameter or a body.
BREAKABLE = {
    label
    for label, op in OPERATIONS.items()
    if op.body or any(p.is_required for p in op.iter_parameters())
}
# A JSON schema cannot say "a real calendar date": a template or filter with a time like
# February 30 matches the document's pattern but is rightly refused (400), so for these
# operations "valid data was rejected" is not a finding.
WITH_TIMES = {"POST /addjob", "POST /addarrayjob", "POST /monitor/jobids"}
# CT_FUZZ_EXAMPLES=500 scripts/test tests/engine/test_remote_fuzz.py digs deeper than CI.
EXAMPLES = int(os.environ.get("CT_FUZZ_EXAMPLES", "25"))
CASES = [
    (label, mode)
    for label in sorted(OPERATIONS)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or label in BREAKABLE
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_api_conforms_to_its_openapi_document(
    fuzzed_server: str, label: str, mode: GenerationMode
) -> None:
    excluded = [positive_data_acceptance] if label in WITH_TIMES else []

    @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=fuzzed_server, excluded_checks=excluded)

    check()
