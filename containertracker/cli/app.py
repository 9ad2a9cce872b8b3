"""The ``containertracker`` command: qsub/qstat/qdel for containers, on the public API only.

Every command opens a tracker of ``--backend`` (docker, podman, swarm or remote) for ``--session``
(global options, given before or after the command); errors print one line to stderr and exit
with a code that tells them apart (EXIT_CODES).
"""

from __future__ import annotations

import copy
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, cast

import typer
from loguru import logger
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup, TyperOption

from containertracker import errors
from containertracker.cli import dashboard
from containertracker.cli.missing import exit_if_missing
from containertracker.cli.parallel import in_parallel
from containertracker.cli.parse import parse_array, parse_pairs, parse_state
from containertracker.cli.refs import References, Target
from containertracker.cli.render import (
    JobRow,
    in_order,
    info_table,
    job_header,
    jobs_table,
    machines_table,
    print_json,
    state_counts,
)
from containertracker.cli.waiting import wait_for_jobs
from containertracker.errors import (
    ContainerTrackerError,
    InvalidArgumentError,
    UnsupportedOperationError,
)
from containertracker.models import JobState, JobTemplate
from containertracker.registry import new_job_tracker
from containertracker.settings import ServerSettings, Settings
from containertracker.tracker import (
    CONTROL_ACTIONS,
    JobTemplater,
    JobTracker,
    Monitorer,
    control_action,
)

__all__ = ["EXIT_CODES", "app", "main"]

EXIT_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (errors.JobNotFoundError, 3),
    (errors.InvalidArgumentError, 2),
    (errors.UnsupportedAttributeError, 2),
    (errors.InvalidStateError, 4),
    (errors.DrmCommunicationError, 5),
    (errors.DeniedByDrmsError, 6),
    (errors.WaitTimeoutError, 7),
    (errors.UnsupportedOperationError, 8),
    (errors.TryLaterError, 9),
    (errors.ContainerTrackerError, 10),
)
"""Exit status per error class, first match wins. 0 is success, 1 "a job failed" (wait),
2 also covers usage errors the argument parser finds."""
JOB_FAILED: Final = 1


class _Commands(TyperGroup):
    """The app's command group. Every command also takes the global options (the group's own,
    declared once, on its callback), so that they work after the command as well as before."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # At this point the group's params are its callback's options (typer adds its
        # completion options later, to the group only).
        globals_ = [p for p in self.params if isinstance(p, TyperOption)]
        for command in self.commands.values():
            command.params.extend(_after_the_command(option) for option in globals_)


def _after_the_command(option: TyperOption) -> TyperOption:
    """A command's copy of a global option: same names, type and help, but no default and no
    environment variable (the group's option read those), and given on the command line it
    replaces the value the group's option set (see :func:`_override`)."""
    after = copy.copy(option)
    after.default = None
    after.envvar = None
    after.show_envvar = False
    after.expose_value = False  # the command's function does not take it
    after.callback = cast("Callable[..., Any]", _override)  # given the app's typer.Context
    after.rich_help_panel = "Global options"
    return after


def _override(ctx: typer.Context, param: TyperOption, value: Any) -> None:
    """Apply a global option given after the command: it replaces the value given before
    the command (or the default). Click runs this for the command's copy of the option,
    after the group's callback made ``ctx.obj`` and before the command's body."""
    source = ctx.get_parameter_source(str(param.name))
    if ctx.resilient_parsing or source is None or source.name != "COMMANDLINE":
        return  # not given after the command; or shell completion (no group callback ran)
    setattr(_options(ctx), str(param.name), value)


app = typer.Typer(
    name="containertracker",
    help="Run batch jobs as containers: submit, list, wait, control, delete (DRMAA2).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=_Commands,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _Options:
    """One invocation's global options, kept in typer's context (``ctx.obj``): one field per
    option of the app callback, by the option's name.

    The group's options set them before the command's arguments are parsed, where the same
    options given again replace them; the tracker is opened on first use (in the command's
    body, so with the final values) and closed when the context closes (after the command,
    also when it raised).
    """

    backend: str
    session: str
    engine_url: str | None
    url: str | None
    _tracker: JobTracker | None = field(default=None, init=False)

    @property
    def params(self) -> dict[str, Any]:
        """The tracker's params (Settings field names) the options set."""
        params: dict[str, Any] = {}
        if self.engine_url:
            params["engine_url"] = self.engine_url
        if self.url:
            params["remote_url"] = self.url
        return params

    def tracker(self) -> JobTracker:
        """The session's tracker, opened now if this is its first use."""
        if self._tracker is None:
            self._tracker = new_job_tracker(self.backend, self.session, self.params)
        return self._tracker

    def close(self) -> None:
        """Close the tracker if it was opened (and has a ``close``)."""
        if self._tracker is not None:
            close = getattr(self._tracker, "close", None)
            if close is not None:
                close()

    def targets(self, refs: list[str] | None, array: str | None) -> list[Target]:
        """What each reference names (``array``, given with ``--array``, first): a job, or an
        array job's tasks. References are job or array ids or unique prefixes of either
        (see :mod:`containertracker.cli.refs`).

        Raises:
            JobNotFoundError: a reference names nothing in the session.
            InvalidArgumentError: a prefix begins several ids, or nothing was named.
        """
        found = References(self.tracker(), self.session)
        targets = [found.target(array, arrays_only=True)] if array is not None else []
        targets += [found.target(ref) for ref in refs or []]
        if not targets:
            raise InvalidArgumentError("name at least one job or array id (or --array ARRAY_ID)")
        return targets

    def resolve(self, refs: list[str] | None, array: str | None) -> list[str]:
        """The job ids the references name (see :meth:`targets`), each once, in order."""
        return _job_ids(self.targets(refs, array))


def _options(ctx: typer.Context) -> _Options:
    """The invocation's options, which the app callback put into the (parent) context."""
    options = ctx.obj
    assert isinstance(options, _Options), "the app callback sets ctx.obj"
    return options


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
ArrayOption = Annotated[
    str | None,
    typer.Option("--array", "-a", help="All tasks of this array job (id or unique prefix)."),
]
JobsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Job ids, array ids (all their tasks) or unique prefixes."),
]


@app.callback()
def _global_options(
    ctx: typer.Context,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            "-b",
            envvar="CONTAINERTRACKER_BACKEND",
            help="docker, podman, swarm or remote.",
        ),
    ] = "docker",
    session: Annotated[
        str,
        typer.Option("--session", "-s", envvar="CONTAINERTRACKER_SESSION", help="The job session."),
    ] = "default",
    engine_url: Annotated[
        str | None,
        typer.Option(help="Engine API socket (else CONTAINERTRACKER_ENGINE_URL or default)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Remote server URL for --backend remote (CONTAINERTRACKER_REMOTE_URL)."),
    ] = None,
) -> None:
    options = _Options(backend, session, engine_url, url)
    ctx.obj = options
    ctx.call_on_close(options.close)


# -- helpers -------------------------------------------------------------------------------------


def _template(tracker: JobTracker, job_id: str) -> JobTemplate | None:
    return tracker.job_template(job_id) if isinstance(tracker, JobTemplater) else None


def _rows(tracker: JobTracker, ids: list[str]) -> list[JobRow]:
    """Each job's row, in the order of ``ids`` (read several at a time: through a server, each
    read is a round trip)."""
    return in_parallel(
        lambda job_id: JobRow(tracker.job_info(job_id), _template(tracker, job_id)), ids
    )


def _absolute(path: str | None) -> str:
    """A host path made absolute now, so that ``logs`` finds it from any directory."""
    if not path or path.startswith(("$DRMAA2_", "/dev/")):
        return path or ""
    return os.path.abspath(path)


# -- commands ------------------------------------------------------------------------------------


@app.command()
def submit(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="Container image (the job category).")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="Command and arguments (put -- before options of the command)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Job name.")] = "",
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE, repeatable.")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Host file for stdout.")
    ] = None,
    error: Annotated[str | None, typer.Option("--error", help="Host file for stderr.")] = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help="Host file as stdin.")] = None,
    join: Annotated[bool, typer.Option("--join", help="stderr into the output file.")] = False,
    workdir: Annotated[
        str, typer.Option("--workdir", "-w", help="Working directory in the container.")
    ] = "",
    hold: Annotated[bool, typer.Option("--hold", help="Submit held (release to start).")] = False,
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", "-r", help="Resource limit KEY=VALUE, e.g. CPU_TIME=60."),
    ] = None,
    slots: Annotated[int, typer.Option("--slots", help="CPUs for the job (min slots).")] = 0,
    extension: Annotated[
        list[str] | None,
        typer.Option("--extension", "-x", help="Extension KEY=VALUE, e.g. user=nobody."),
    ] = None,
    stage_in: Annotated[
        list[str] | None, typer.Option("--stage-in", help="HOST_PATH=CONTAINER_PATH.")
    ] = None,
    stage_out: Annotated[
        list[str] | None, typer.Option("--stage-out", help="CONTAINER_PATH=HOST_PATH.")
    ] = None,
    array: Annotated[
        str | None,
        typer.Option("--array", "-a", help="Array job BEGIN-END[:STEP]; TASK_ID is set."),
    ] = None,
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", "-p", help="Most array tasks at once (0: all).")
    ] = 0,
    json_output: JsonFlag = False,
) -> None:
    """Submit a job (or an array job); print its id.

    Output paths may use $DRMAA2_INDEX$ (the task id of an array task).
    """
    command = command or []
    jt = JobTemplate(
        job_category=image,
        remote_command=command[0] if command else "",
        args=tuple(command[1:]),
        job_name=name,
        job_environment=parse_pairs(env or [], "--env"),
        output_path=_absolute(output),
        error_path=_absolute(error),
        input_path=_absolute(input),
        join_files=join,
        working_directory=workdir,
        submit_as_hold=hold,
        resource_limits=parse_pairs(resource or [], "--resource"),
        min_slots=slots,
        extension=parse_pairs(extension or [], "--extension"),
        stage_in_files={
            _absolute(k): v for k, v in parse_pairs(stage_in or [], "--stage-in").items()
        },
        stage_out_files={
            k: _absolute(v) for k, v in parse_pairs(stage_out or [], "--stage-out").items()
        },
    )
    tracker = _options(ctx).tracker()
    if array is None:
        if max_parallel:
            raise InvalidArgumentError("--max-parallel needs --array")
        job_id = tracker.add_job(jt)
        print_json(out, {"id": job_id}) if json_output else out.print(job_id)
        return
    spec = parse_array(array)
    array_id = tracker.add_array_job(jt, spec.begin, spec.end, spec.step, max_parallel)
    if json_output:
        print_json(out, {"id": array_id, "tasks": tracker.list_array_jobs(array_id)})
    else:
        out.print(array_id)


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    jobs: JobsArgument = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only jobs in this state (repeatable).")
    ] = None,
    array: ArrayOption = None,
    full_ids: Annotated[bool, typer.Option("--full-ids", help="Do not shorten ids.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """The session's jobs (or only those named), one line each: id, name, state, task, image,
    started, runtime, exit. (info and --json also give the state's reason.)"""
    options = _options(ctx)
    tracker = options.tracker()
    ids = options.resolve(jobs, array) if jobs or array else tracker.list_jobs()
    wanted = {parse_state(s) for s in state or []}
    rows = [r for r in in_order(_rows(tracker, ids)) if not wanted or r.info.state in wanted]
    if json_output:
        print_json(out, [row.to_json() for row in rows])
    else:
        out.print(jobs_table(rows, full_ids=full_ids))


app.command("status", help="Same as list.")(list_jobs)


@app.command()
def info(
    ctx: typer.Context,
    jobs: Annotated[
        list[str], typer.Argument(help="Job ids, array ids (all their tasks) or unique prefixes.")
    ],
    json_output: JsonFlag = False,
) -> None:
    """Everything known about jobs. An array id gives a line of counts by state, then each
    task's details in task order. With --json: one job's {info, template}, or a list of
    them for an array or several jobs."""
    options = _options(ctx)
    tracker = options.tracker()
    targets = options.targets(jobs, None)
    ids = _job_ids(targets)
    rows = dict(zip(ids, _rows(tracker, ids), strict=True))
    if json_output:
        details = [rows[job_id].details() for job_id in ids]
        single = len(targets) == 1 and not targets[0].array_id
        print_json(out, details[0] if single else details)
        return
    shown: set[str] = set()
    for target in targets:
        if target.array_id:
            counts = Counter(rows[job_id].info.state for job_id in target.ids)
            out.print(
                f"array job {target.array_id}: {len(target.ids)} task(s): {state_counts(counts)}"
            )
        for job_id in target.ids:
            if job_id not in shown:
                shown.add(job_id)
                if len(ids) > 1:
                    out.print(job_header(rows[job_id].task, job_id))
                out.print(info_table(rows[job_id].info, rows[job_id].template))


@app.command()
def logs(
    ctx: typer.Context,
    jobs: JobsArgument = None,
    array: ArrayOption = None,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show the error file.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Print jobs' output files (their --output; --stderr: their --error), read on this host.

    Several jobs (or an array) get a ==> task N (id) <== header each, as tail does;
    --json prints {job id: text}.
    """
    options = _options(ctx)
    tracker = options.tracker()
    ids = options.resolve(jobs, array)
    if json_output:
        print_json(out, {job_id: _log_text(tracker, job_id, stderr) for job_id in ids})
        return
    for job_id in ids:
        text = _log_text(tracker, job_id, stderr)
        if len(ids) > 1:
            task = (_template(tracker, job_id) or JobTemplate()).job_environment.get("TASK_ID")
            out.print(job_header(task or "", job_id))
        sys.stdout.write(text)
        sys.stdout.flush()


def _log_text(tracker: JobTracker, job_id: str, stderr: bool) -> str:
    """The content of a job's output (or error) file, read where the job's tracker put it:
    the path it resolved at submission (JobInfo extension ``output_path``/``error_path``,
    every placeholder expanded), which any backend reports.

    Raises:
        InvalidArgumentError: the job has no such file, or it cannot be read here.
    """
    info = tracker.job_info(job_id)
    path = info.extension.get("error_path" if stderr else "output_path")
    what = "--error" if stderr else "--output"
    if not path:
        raise InvalidArgumentError(
            f"job {job_id[:12]} has no {what} file; submit with {what} FILE to keep it"
        )
    try:
        return Path(path).read_text(errors="replace")
    except OSError as exc:
        state = tracker.job_state(job_id)[0]
        raise InvalidArgumentError(
            f"cannot read {path} ({exc.strerror}); the job is {state.remote_name}"
            + ("" if state.terminal else " and may not have written it yet")
        ) from None


@app.command()
def wait(
    ctx: typer.Context,
    jobs: JobsArgument = None,
    array: ArrayOption = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", "-t", help="Seconds (default: forever).")
    ] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Wait for this state (repeatable).")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Wait until the jobs end (or reach --state); exit 1 if any failed, 7 on timeout.

    Several jobs or an array show live progress on a terminal.
    """
    options = _options(ctx)
    tracker = options.tracker()
    ids = options.resolve(jobs, array)
    states = tuple(parse_state(s) for s in state or [])
    live = not json_output and out.is_terminal and len(ids) > 1
    reached = wait_for_jobs(tracker, ids, timeout, states, console=out if live else None)
    failed = [job_id for job_id, s in reached.items() if s is JobState.FAILED]
    if json_output:
        print_json(out, {job_id: s.remote_name for job_id, s in reached.items()})
    else:
        done = sum(s is JobState.DONE for s in reached.values())
        out.print(f"{len(ids)} job(s): {done} done, {len(failed)} failed")
    if failed and (not states or JobState.FAILED not in states):
        raise typer.Exit(JOB_FAILED)


@app.command()
def control(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(help=" | ".join(CONTROL_ACTIONS))],
    jobs: JobsArgument = None,
    array: ArrayOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Suspend, resume, hold, release or terminate jobs (or every task of an array), up to
    8 at a time (side by side: one that waits for its job does not hold up the others)."""
    checked = control_action(action)
    options = _options(ctx)
    tracker = options.tracker()
    _each(options.resolve(jobs, array), lambda j: tracker.job_control(j, checked), json_output)


@app.command()
def delete(
    ctx: typer.Context,
    jobs: JobsArgument = None,
    array: ArrayOption = None,
    finished: Annotated[
        bool, typer.Option("--finished", help="Every done or failed job of the session.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Delete finished jobs (their containers), up to 8 at a time."""
    options = _options(ctx)
    tracker = options.tracker()
    if finished:
        ids = [j for j in tracker.list_jobs() if tracker.job_state(j)[0].terminal]
        if jobs or array:
            ids = [j for j in options.resolve(jobs, array) if j in ids]
    else:
        ids = options.resolve(jobs, array)
    _each(ids, tracker.delete_job, json_output)


def _job_ids(targets: list[Target]) -> list[str]:
    """The jobs the targets name, each once, in order."""
    return list(dict.fromkeys(job_id for target in targets for job_id in target.ids))


def _each(ids: list[str], act: Callable[[str], None], json_output: bool) -> None:
    """Apply ``act`` to every job (each once), several at a time (:func:`in_parallel`); report
    each outcome in the order of ``ids``, then fail with the first error."""
    unique = list(dict.fromkeys(ids))

    def attempt(job_id: str) -> ContainerTrackerError | None:
        try:
            act(job_id)
        except ContainerTrackerError as exc:
            return exc
        return None

    outcomes = list(zip(unique, in_parallel(attempt, unique), strict=True))
    if json_output:
        print_json(out, [{"id": j, "error": None if e is None else str(e)} for j, e in outcomes])
    else:
        for job_id, problem in outcomes:
            if problem is None:
                out.print(job_id)
            else:
                err.print(Text(f"{job_id[:12]}: {problem}", style="red"))
    first = next((e for _, e in outcomes if e is not None), None)
    if first is not None:
        raise typer.Exit(_exit_code(first))


@app.command()
def images(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """The images jobs can use (job categories)."""
    categories = sorted(_options(ctx).tracker().list_job_categories())
    print_json(out, categories) if json_output else out.print("\n".join(categories))


@app.command()
def machines(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """The machine(s) running jobs: the engine's host."""
    tracker = _options(ctx).tracker()
    if not isinstance(tracker, Monitorer):
        raise UnsupportedOperationError("this backend offers no monitoring")
    found = tracker.get_all_machines()
    if json_output:
        print_json(out, [m.model_dump(mode="json") for m in found])
    else:
        out.print(machines_table(found))


@app.command()
def ui(ctx: typer.Context) -> None:
    """Open the web dashboard of the server --url names (CONTAINERTRACKER_REMOTE_URL) in a
    browser; print its address. The page asks for the server's token itself."""
    url = dashboard.dashboard_url(Settings.from_params(_options(ctx).params).remote_url)
    out.print(url)
    if not dashboard.open_in_browser(url):
        err.print("no browser to open here: open the address above yourself")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [32321].")] = None,
    base_path: Annotated[str | None, typer.Option(help="Path prefix of every endpoint.")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require this bearer token; visible in ps: prefer --token-file or "
            "CONTAINERTRACKER_SERVER_TOKEN."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="Bearer tokens, one per line: 'TOKEN [SESSION ...]'."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Require basic auth as this user.")] = None,
    password: Annotated[str | None, typer.Option(help="Basic-auth password.")] = None,
    tls_certfile: Annotated[Path | None, typer.Option(help="PEM certificate (HTTPS).")] = None,
    tls_keyfile: Annotated[Path | None, typer.Option(help="PEM private key.")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help="Largest request body.")] = None,
    max_wait: Annotated[float | None, typer.Option(help="Longest /wait long poll (s).")] = None,
    allow_privileged: Annotated[
        bool, typer.Option("--allow-privileged", help="Allow privileged containers.")
    ] = False,
    allow_host_namespaces: Annotated[
        bool, typer.Option("--allow-host-namespaces", help="Allow host net/ipc/uts/pid.")
    ] = False,
    allow_host_path: Annotated[
        list[Path] | None,
        typer.Option("--allow-host-path", help="Allow host paths below DIR (repeatable)."),
    ] = None,
    allow_host_ports: Annotated[
        bool, typer.Option("--allow-host-ports", help="Allow exposedPorts (host ports).")
    ] = False,
    allow_networks: Annotated[
        bool, typer.Option("--allow-networks", help="Allow net=<other network>.")
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="Also answer this Host name (repeatable)."),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option("--allowed-origin", help="Accept this browser origin (repeatable)."),
    ] = None,
    monitor_all_containers: Annotated[
        bool,
        typer.Option(
            "--monitor-all-containers", help="/monitor shows containers of no tracker too."
        ),
    ] = False,
    default_pids_limit: Annotated[
        int | None, typer.Option(help="pids-limit of jobs setting none [1024].")
    ] = None,
    max_pids_limit: Annotated[int | None, typer.Option(help="Largest pids-limit [8192].")] = None,
    default_memory: Annotated[
        int | None, typer.Option(help="Memory limit (bytes) of jobs setting none [2 GiB].")
    ] = None,
    max_memory: Annotated[
        int | None, typer.Option(help="Largest VIRTUAL_MEMORY (bytes) [16 GiB].")
    ] = None,
    max_waiters: Annotated[int | None, typer.Option(help="Concurrent /wait polls [64].")] = None,
    max_feed_polls: Annotated[
        int | None, typer.Option(help="Concurrent /changes polls [32].")
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option(help="Connections and requests at once [512].")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the web dashboard (/ui) in a browser.")
    ] = False,
) -> None:
    """Serve the backend's tracker over the drmaa2os remote HTTP API (Ctrl-C stops)."""
    from containertracker.remote.server import serve as run_server

    options = _options(ctx)
    if options.backend == "remote":
        raise InvalidArgumentError("serve a local backend (docker, podman or swarm), not remote")
    if token is not None:
        err.print(
            Text("warning: ", style="yellow")
            + Text(
                "--token is visible to every user of this host (ps); use --token-file or "
                "CONTAINERTRACKER_SERVER_TOKEN"
            )
        )
    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "base_path": base_path,
        "token": token,
        "token_file": token_file,
        "user": user,
        "password": password,
        "tls_certfile": tls_certfile,
        "tls_keyfile": tls_keyfile,
        "max_body_bytes": max_body_bytes,
        "max_wait": max_wait,
        "allow_privileged": allow_privileged or None,
        "allow_host_namespaces": allow_host_namespaces or None,
        "allowed_host_paths": allow_host_path or None,
        "allow_host_ports": allow_host_ports or None,
        "allow_networks": allow_networks or None,
        "allowed_hosts": allowed_host or None,
        "allowed_origins": allowed_origin or None,
        "monitor_all_containers": monitor_all_containers or None,
        "default_pids_limit": default_pids_limit,
        "max_pids_limit": max_pids_limit,
        "default_memory": default_memory,
        "max_memory": max_memory,
        "max_waiters": max_waiters,
        "max_feed_polls": max_feed_polls,
        "max_connections": max_connections,
    }
    try:
        settings = ServerSettings(
            backend=options.backend,
            session=options.session,
            **{k: v for k, v in given.items() if v is not None},
        )
    except ValidationError as exc:
        raise InvalidArgumentError(f"invalid server settings: {exc}") from None

    def announce(line: str) -> None:
        err.print(line)
        if open_browser:
            dashboard.open_when_serving(settings, err.print)

    run_server(settings, options.params, announce=announce)


# -- entry point ---------------------------------------------------------------------------------


def _exit_code(exc: BaseException) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


@contextmanager
def _logging() -> Iterator[None]:
    level = Settings.model_fields["log_level"].default
    with suppress(ValidationError):  # a bad setting is reported when a tracker is opened
        level = Settings().log_level
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), format="{time:HH:mm:ss} {level} {message}")
    logger.enable("containertracker")
    yield


def main() -> None:
    """Run the command; errors become a message and exit code, and so does a package the
    command needs that is not installed (``serve`` without the server extra, say)."""
    with _logging():
        try:
            app()
        except ContainerTrackerError as exc:
            err.print(Text("error: ", style="red") + Text(str(exc)))
            sys.exit(_exit_code(exc))
        except ImportError as exc:
            exit_if_missing(exc)
            raise
        except KeyboardInterrupt:
            sys.exit(130)
