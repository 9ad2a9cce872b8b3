"""The pure parts of the remote tracker: error classes on the wire, state names, the
admission policy and the exposure check (no server, no engine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containertracker import errors
from containertracker.errors import DeniedByDrmsError, InvalidArgumentError
from containertracker.models import JobState, JobTemplate
from containertracker.remote import Policy, check_exposure
from containertracker.remote.app import PATHS, openapi_document
from containertracker.remote.wire import error_class_name, error_from_wire, parse_states
from containertracker.settings import ServerSettings


@pytest.mark.parametrize(
    "cls",
    [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.ContainerTrackerError)
    ],
)
def test_every_error_class_survives_the_wire(cls: type[errors.ContainerTrackerError]) -> None:
    exc = cls("the message")
    back = error_from_wire(error_class_name(exc), str(exc))
    assert type(back) is cls and str(back) == "the message"


def test_a_private_subclass_travels_as_its_public_parent() -> None:
    class Mine(errors.InvalidStateError):
        pass

    assert error_class_name(Mine("x")) == "InvalidStateError"


def test_text_without_a_class_is_an_internal_error() -> None:
    """A Go server sends only text: it becomes an InternalError quoting it."""
    exc = error_from_wire(None, "job does not exist")
    assert isinstance(exc, errors.InternalError) and "job does not exist" in str(exc)
    assert isinstance(error_from_wire("NoSuchClass", "x"), errors.InternalError)


def test_parse_states() -> None:
    assert parse_states(["done", "queuedHeld"]) == (JobState.DONE, JobState.QUEUED_HELD)
    assert parse_states([]) == ()
    with pytest.raises(ValueError, match="Done"):
        parse_states(["Done"])  # remote names are lower camel


# -- policy -----------------------------------------------------------------------------------


def tpl(**fields: object) -> JobTemplate:
    return JobTemplate(remote_command="true", job_category="img", **fields)  # type: ignore[arg-type]


def test_default_policy_accepts_a_plain_job() -> None:
    Policy().check(tpl(job_environment={"A": "1"}, extension={"user": "nobody"}))
    Policy().check(tpl(extension={"privileged": "false", "net": "none", "pid": "private"}))
    Policy().check(tpl(output_path=os.devnull))


@pytest.mark.parametrize(
    ("template", "fix"),
    [
        (tpl(extension={"privileged": "true"}), "--allow-privileged"),
        (tpl(extension={"privileged": "maybe"}), "--allow-privileged"),
        (tpl(extension={"net": "host"}), "--allow-host-namespaces"),
        (tpl(extension={"pid": "container:abc"}), "--allow-host-namespaces"),
        (tpl(output_path="/tmp/out"), "--allow-host-path"),
        (tpl(input_path="in.txt"), "--allow-host-path"),
        (tpl(stage_in_files={"/etc/passwd": "/p"}), "--allow-host-path"),
        (tpl(stage_out_files={"/o": "/root/.ssh/x"}), "--allow-host-path"),
    ],
)
def test_default_policy_refuses_what_reaches_the_host(template: JobTemplate, fix: str) -> None:
    with pytest.raises(DeniedByDrmsError, match=fix):
        Policy().check(template)


def test_operator_can_allow_each_feature() -> None:
    Policy(allow_privileged=True).check(tpl(extension={"privileged": "true"}))
    Policy(allow_host_namespaces=True).check(tpl(extension={"net": "host", "ipc": "host"}))


def test_host_paths_only_below_allowed_directories(tmp_path: Path) -> None:
    policy = Policy(allowed_host_paths=(tmp_path,))
    policy.check(tpl(output_path=str(tmp_path / "out.$DRMAA2_INDEX$")))
    policy.check(tpl(stage_in_files={str(tmp_path / "a"): "/a"}))
    for escape in (str(tmp_path / ".." / "x"), "/etc/shadow", "$DRMAA2_HOME_DIR$/x"):
        with pytest.raises(DeniedByDrmsError, match="outside"):
            policy.check(tpl(error_path=escape))
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(DeniedByDrmsError, match="outside"):
        policy.check(tpl(input_path=str(tmp_path / "link" / "passwd")))


# -- exposure ---------------------------------------------------------------------------------


def test_loopback_needs_no_auth() -> None:
    check_exposure(ServerSettings())
    check_exposure(ServerSettings(host="::1"))
    check_exposure(ServerSettings(host="localhost"))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_other_addresses_need_auth(host: str) -> None:
    with pytest.raises(InvalidArgumentError, match="token"):
        check_exposure(ServerSettings(host=host))
    check_exposure(ServerSettings(host=host, token="s3cret"))
    check_exposure(ServerSettings(host=host, user="u", password="p"))


def test_inconsistent_security_settings() -> None:
    with pytest.raises(InvalidArgumentError, match="password"):
        check_exposure(ServerSettings(user="u"))
    with pytest.raises(InvalidArgumentError, match="key"):
        check_exposure(ServerSettings(tls_certfile=Path("/c.pem")))


def test_openapi_document_describes_every_path() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == set(PATHS)
