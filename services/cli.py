"""The ``switchboard`` command: run the processes, create workspaces, operate the system."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from runtime.process import Process
from services import registry
from services.logs import configure_logging
from services.settings import Settings, SettingsError

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"switchboard: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        result: int = args.action(settings, args)
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run one process, or all of them")
    run.add_argument("process", choices=[*registry.names(), "all"])
    run.add_argument("--log-dir", default=".local/logs", help="with 'all': where logs go")
    run.set_defaults(action=_run)

    processes = commands.add_parser(
        "processes", help="the process registry: name, kind, replicas, store, health"
    )
    processes.add_argument("--json", action="store_true", help="as JSON (for deployment files)")
    processes.set_defaults(action=_processes)

    deployment = commands.add_parser(
        "deployment",
        help="the deployment files generated from the registry (deploy/docker-compose.yml,"
        " deploy/kubernetes/switchboard.yaml): write or check them",
    )
    deployment.add_argument("verb", choices=["write", "check"])
    deployment.add_argument("--root", default=".", help="the repository's root")
    deployment.set_defaults(action=_deployment)

    workspace = commands.add_parser("workspace", help="manage workspaces")
    workspace_commands = workspace.add_subparsers(required=True, metavar="ACTION")
    create = workspace_commands.add_parser(
        "create", help="create a workspace with its business number and first admin"
    )
    create.add_argument("name")
    create.add_argument("--phone-number-id", required=True, help="Meta's phone_number_id")
    create.add_argument("--time-zone", default="UTC", help="IANA name, e.g. America/Bogota")
    create.add_argument("--admin-name", default="Admin")
    create.add_argument(
        "--agent-conversations",
        action="store_true",
        help="let flows hand the number's conversations to agents at once"
        " (otherwise an admin turns it on: PUT /api/numbers/{id}/agent-conversations)",
    )
    create.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait until it is usable"
    )
    create.set_defaults(action=_create_workspace)

    topics = commands.add_parser("topics", help="create the catalogue's Kafka topics")
    topics.set_defaults(action=_create_topics)

    projections = commands.add_parser("projections", help="read-model maintenance")
    projection_commands = projections.add_subparsers(required=True, metavar="ACTION")
    rebuild = projection_commands.add_parser(
        "rebuild", help="empty the read models; the projector replays from offset zero"
    )
    rebuild.add_argument(
        "name",
        nargs="?",
        choices=("projector", "metrics"),
        default="projector",
        help="which projection: the projector's read models (default) or the metrics alone",
    )
    rebuild.set_defaults(action=_rebuild_projections)
    status = projection_commands.add_parser(
        "status",
        help="every consumer's position and lag per topic (and partition), the relays' lag",
    )
    status.add_argument("--partitions", action="store_true", help="a line per partition too")
    status.add_argument("--json", action="store_true", help="JSON lines, one per partition/relay")
    status.set_defaults(action=_projections_status)

    demo = commands.add_parser("demo", help="send signed sample webhooks, print the history")
    demo.add_argument("--url", default=None, help="gateway base URL (default: this config)")
    demo.add_argument("--token", required=True, help="a member token of the workspace")
    demo.add_argument("--phone-number-id", required=True)
    demo.add_argument("--fixtures", default=None, help="folder of webhook JSON samples")
    demo.set_defaults(action=_demo)

    setup = commands.add_parser(
        "demo-setup",
        help="create (or check) the demo workspace, its two agents, group and flow; print"
        " where to go and the sign-in tokens",
    )
    setup.add_argument("--url", default=None, help="gateway base URL (default: this config)")
    setup.add_argument("--phone-number-id", required=True, help="the demo business number")
    setup.add_argument("--state", default=".local/demo-workspace.json", help="remembered here")
    setup.add_argument("--flow", default="deploy/demo-flow.yaml", help="the demo flow")
    setup.set_defaults(action=_demo_setup)

    replay = commands.add_parser("replay", help="replay what the event stores hold")
    replay_commands = replay.add_subparsers(required=True, metavar="WHAT")
    conversation = replay_commands.add_parser(
        "conversation",
        help="one conversation's timeline from every service's event store, in time order",
    )
    conversation.add_argument("conversation_id", metavar="ID")
    conversation.add_argument("--json", action="store_true", help="one JSON object per line")
    conversation.add_argument(
        "--commands",
        action="store_true",
        help="also what only the gateway publishes (replies as queued, claims, transfers,"
        " closes asked for, read markers), read from Kafka",
    )
    conversation.set_defaults(action=_replay_conversation)

    what_if = commands.add_parser(
        "simulate",
        help="replay a group's hand-offs, statuses, claims, transfers and closes of a period"
        " through another rotation; waits and loads beside what really happened",
    )
    # Checked by the command itself, so that anything wrong is one line and exit status 2.
    what_if.add_argument("--from", dest="start", metavar="T1", help="ISO 8601 (UTC if no offset)")
    what_if.add_argument("--to", dest="end", metavar="T2", help="ISO 8601, after T1")
    what_if.add_argument("--group", metavar="GROUP_ID")
    what_if.add_argument(
        "--rotation", metavar="ROTATION", help="available, all, specific, no_owner"
    )
    what_if.add_argument("--member", metavar="MEMBER_ID", help="the member specific names")
    what_if.add_argument("--capacity", metavar="N", help="every member's capacity (default: real)")
    what_if.add_argument("--json", action="store_true", help="one JSON document")
    what_if.set_defaults(action=_simulate)

    parked = commands.add_parser(
        "dead-letters", help="records, stored events and deadlines parked with the reason"
    )
    parked_commands = parked.add_subparsers(required=True, metavar="ACTION")
    listed = parked_commands.add_parser("list", help="every dead letter: id, when, who, why")
    listed.add_argument("--json", action="store_true", help="one JSON object per line")
    listed.set_defaults(action=_dead_letters, verb="list", id=None)
    show = parked_commands.add_parser("show", help="one dead letter in full, its record decoded")
    show.add_argument("id", metavar="ID", help="the dead letter's id, as listed")
    show.set_defaults(action=_dead_letters, verb="show", json=False)
    put_back = parked_commands.add_parser(
        "replay", help="put the parked record back on its topic (idempotent)"
    )
    put_back.add_argument("id", metavar="ID", help="the dead letter's id, as listed")
    put_back.set_defaults(action=_dead_letters, verb="replay", json=False)

    for what, subject, about in (
        ("inbox", "member", "a member's inbox, as the API shows it to that member"),
        ("roster", "group", "a group's roster (members, status, load), as an admin sees it"),
        ("queue", "group", "a group's queue in serving order, as an admin sees it"),
    ):
        view = commands.add_parser(what, help=f"{about}; now, or at a past moment (--as-of)")
        view.add_argument(f"--{subject}", required=True, dest="subject", metavar="ID")
        view.add_argument(
            "--as-of",
            default=None,
            metavar="TIME",
            help="an RFC 3339 time with its offset (2026-11-29T14:02:00Z): the answer as it"
            " was then, folded again from the events",
        )
        view.set_defaults(action=_as_of_view, view=what)

    schemas = commands.add_parser(
        "schemas", help="the JSON Schemas of every event type and version (docs/schemas/)"
    )
    schema_commands = schemas.add_subparsers(required=True, metavar="ACTION")
    write = schema_commands.add_parser(
        "write",
        help="write the files that differ from the models (not a published version's"
        " structure: that needs a new version)",
    )
    write.add_argument("--dir", default="docs/schemas", help="the schemas folder")
    write.add_argument(
        "--force",
        action="store_true",
        help="also rewrite a published version whose structure changed (only for a version"
        " no record was ever written with)",
    )
    write.set_defaults(action=_schemas_write)
    check = schema_commands.add_parser(
        "check", help="exit 1, saying what to do, if the files differ from the models"
    )
    check.add_argument("--dir", default="docs/schemas", help="the schemas folder")
    check.set_defaults(action=_schemas_check)

    asyncapi = commands.add_parser(
        "asyncapi",
        help="the AsyncAPI document of every topic (docs/asyncapi.yaml): print, write or check",
    )
    asyncapi.add_argument(
        "verb",
        nargs="?",
        choices=["print", "write", "check"],
        default="print",
        help="print it (default), write it to --file, or check that --file matches the code",
    )
    asyncapi.add_argument("--file", default="docs/asyncapi.yaml", help="the committed document")
    asyncapi.add_argument("--json", action="store_true", help="print as JSON instead of YAML")
    asyncapi.set_defaults(action=_asyncapi)
    return parser


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.process == "all":
        from services.supervisor import run_all

        return run_all(Path(args.log_dir))
    declared = registry.process(args.process)
    target = declared.load()
    match declared.kind:
        case "http":
            import uvicorn

            server = uvicorn.Server(
                uvicorn.Config(
                    target(settings),
                    host=settings.http_host,
                    port=settings.http_port,
                    log_config=None,
                    access_log=False,
                )
            )
            server.run()
            return 0 if server.started else 1
        case "relay":
            with _observed(settings, declared):
                return _run_until_signal(target(settings, registry.relayed_stores()))
        case "consumer":
            from runtime.app import consumer_app
            from runtime.process import Service

            app = (
                consumer_app(target, settings) if isinstance(target, Service) else target(settings)
            )
            with _observed(settings, declared):
                asyncio.run(app.run())
            return 0
    raise AssertionError(f"unknown kind of process: {declared.kind}")


@contextlib.contextmanager
def _observed(settings: Settings, declared: Process) -> Iterator[None]:
    """A consumer's or the relay's /metrics, /readyz and /healthz while it runs, started
    first: a process started while Kafka or PostgreSQL is away waits for both to answer,
    and /readyz says which it waits for."""
    from runtime.observe import Checks, serving, wait_for_infrastructure

    port = settings.metrics_port if settings.metrics_port is not None else declared.metrics_port
    conninfo = settings.database().conninfo()
    checks = Checks(settings.kafka_bootstrap, conninfo, settings.ready_max_lag)
    with serving(settings.metrics_host, port or 0, checks):
        wait_for_infrastructure(checks)
        yield


def _processes(settings: Settings, args: argparse.Namespace) -> int:
    if args.json:
        rows = [
            {
                "name": p.name,
                "kind": p.kind,
                "command": ["switchboard", "run", p.name],
                "replicas": p.replicas,
                "store": p.store and settings.schema(p.store),
                "relayed": p.relayed,
                "health": p.health,
                "metrics_port": p.metrics_port,
                "description": p.description,
            }
            for p in registry.PROCESSES
        ]
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    for p in registry.PROCESSES:
        print(f"{p.name:<11} {p.kind:<9} replicas {p.replicas}  {p.description}")
    return 0


def _run_until_signal(work: Coroutine[Any, Any, None]) -> int:
    async def runner() -> None:
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("stopped")

    asyncio.run(runner())
    return 0


def _create_workspace(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.producer import PublishFailed
    from services.workspaces import WorkspaceRejected, create_workspace

    try:
        created = asyncio.run(
            create_workspace(
                settings,
                name=args.name,
                phone_number_id=args.phone_number_id,
                time_zone=args.time_zone,
                admin_name=args.admin_name,
                agent_conversations=args.agent_conversations,
                wait_seconds=args.wait,
            )
        )
    except (WorkspaceRejected, PublishFailed, TimeoutError, ValueError) as error:
        print(f"switchboard: workspace not created: {error}", file=sys.stderr)
        return 1
    print(orjson.dumps(created, option=orjson.OPT_INDENT_2).decode())
    return 0


def _create_topics(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.kafka import ensure_topics

    asyncio.run(ensure_topics(settings))
    print("topics ready")
    return 0


def _rebuild_projections(settings: Settings, args: argparse.Namespace) -> int:
    if args.name == "metrics":
        from projections.metrics.app import open_metrics_recorder

        metrics = open_metrics_recorder(settings)
        try:
            metrics.rebuild()
        finally:
            metrics.datastore.close()
        print("metrics emptied; (re)start the metrics process to replay from offset zero")
        return 0
    from projections.app import open_recorder

    recorder = open_recorder(settings)
    try:
        recorder.rebuild()
    finally:
        recorder.datastore.close()
    print("read models emptied; (re)start the projector to replay from offset zero")
    return 0


def _projections_status(settings: Settings, args: argparse.Namespace) -> int:
    from services.operations import status

    rows, relays = asyncio.run(status.gather(settings))
    if args.json:
        for line in status.as_json(rows, relays):
            print(orjson.dumps(line).decode())
    else:
        print(status.render(rows, relays, each_partition=args.partitions))
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from services.demo import run_demo

    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    return run_demo(
        settings,
        url=url,
        token=args.token,
        phone_number_id=args.phone_number_id,
        fixtures=Path(args.fixtures) if args.fixtures else None,
    )


def _demo_setup(settings: Settings, args: argparse.Namespace) -> int:
    import logging

    import httpx

    from services.demo_setup import DemoSetup, DemoSetupFailed, sign_in_sheet
    from services.workspaces import WorkspaceRejected

    url = (args.url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is noise here

    async def setup() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            demo = DemoSetup(
                settings, client, Path(args.state), args.phone_number_id, Path(args.flow)
            )
            return await demo.ensure()

    try:
        state = asyncio.run(setup())
    except (DemoSetupFailed, WorkspaceRejected, TimeoutError, httpx.HTTPError) as error:
        print(f"switchboard: the demo could not be set up: {error}", file=sys.stderr)
        return 1
    print(sign_in_sheet(state, url, sandbox=settings.sandbox))
    return 0


def _replay_conversation(settings: Settings, args: argparse.Namespace) -> int:
    from services.operations.replay import replay_conversation
    from services.registry import relayed_stores

    return replay_conversation(
        settings,
        args.conversation_id,
        relayed_stores(),
        as_json=args.json,
        with_commands=args.commands,
    )


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from services.operations.simulate import Asked, run

    asked = Asked(args.start, args.end, args.group, args.rotation, args.member, args.capacity)
    return run(settings, asked, as_json=args.json)


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from services.operations.dead_letter_commands import run

    return run(args.verb, settings, args.id, as_json=args.json)


def _as_of_view(settings: Settings, args: argparse.Namespace) -> int:
    from services.operations.as_of_commands import run

    return run(settings, args.view, args.subject, args.as_of)


def _schemas_write(settings: Settings, args: argparse.Namespace) -> int:
    from events.published_schemas import write

    report = write(Path(args.dir), force=args.force)
    for path in report.written:
        print(f"wrote {Path(args.dir) / path}")
    for refused in report.refused:
        print(f"refused {Path(args.dir) / refused.path}: {refused.problem}", file=sys.stderr)
    if not report.written and not report.refused:
        print(f"{args.dir}: up to date")
    return 1 if report.refused else 0


def _schemas_check(settings: Settings, args: argparse.Namespace) -> int:
    from events.published_schemas import check

    comparison = check(Path(args.dir))
    if comparison:
        print(f"{args.dir}: matches the models")
        return 0
    print(comparison.report(), file=sys.stderr)
    return 1


def _deployment(settings: Settings, args: argparse.Namespace) -> int:
    from services import deployment

    root = Path(args.root)
    if args.verb == "write":
        written = deployment.write(root)
        for path in written:
            print(f"wrote {root / path}")
        if not written:
            print("deployment files: up to date")
        return 0
    problems = deployment.check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("deployment files: match services/registry.py")
    return 1 if problems else 0


def _asyncapi(settings: Settings, args: argparse.Namespace) -> int:
    from services import asyncapi

    path = Path(args.file)
    if args.verb == "write":
        written = asyncapi.write(path)
        print(f"wrote {path}" if written else f"{path}: up to date")
        return 0
    if args.verb == "check":
        problem = asyncapi.check(path)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 1
        print(f"{path}: matches events/ and services/registry.py")
        return 0
    document = asyncapi.asyncapi_document()
    if args.json:
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        print(asyncapi.render(document), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
