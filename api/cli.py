"""The `ledger` command: `serve` runs the API and the projection worker on the embedded
default; `replay ...` holds the analysts' and auditors' tools (see replay/)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from api import logs


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from persistence.runtime import settle_gc
    from persistence.settings import Settings

    if args.workers < 1:
        print("ledger serve: --workers must be 1 or more", file=sys.stderr)
        return 2
    if args.workers > 1 and args.worker == "thread":
        print("ledger serve: --workers runs the projection worker as a process", file=sys.stderr)
        return 2
    settings = Settings.from_env(projection_worker=args.worker)
    check_startup(settings)
    logs.configure(settings.log_format)
    views, read = masked(settings.views_url), masked(settings.views_read_url)
    views += f", read from {read}" if read != views else ""
    where = f"events: {masked(settings.database_url)}, views: {views}; OpenAPI at /docs"
    logs.emit(settings.log_format, f"Session Ledger on http://{args.host}:{args.port}  ({where})")
    _first_admin_key(settings.database_url, settings.log_format)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": logs.uvicorn_config(settings.log_format),
        "access_log": args.access_log,
        # The ledger never reads the client's address or scheme, so by default it skips
        # uvicorn's X-Forwarded-* rewriting (a middleware layer on every request).
        "proxy_headers": args.proxy_headers,
    }
    if args.workers > 1:
        return _serve_processes(args.workers, settings, options)
    app = create_app(settings)
    settle_gc()
    app.observer.access_log = args.access_log
    uvicorn.run(app, **options)
    return 0


def _serve_processes(n: int, settings: Any, options: dict[str, Any]) -> int:
    """`--workers N`: uvicorn's N API processes, each building the app from the environment
    (`api.app:create_app`) with no projection worker of its own, and the one projection
    worker process this parent starts (unless it runs elsewhere: `--worker external`)."""
    import os
    import threading

    import uvicorn

    from api.app import start_worker_process

    worker = start_worker_process(settings) if settings.projection_worker == "process" else None
    if worker is not None:
        # Reaped as soon as it exits: a worker that died is then gone from the process table,
        # which the API processes' /readyz reads (the lease names its pid).
        threading.Thread(target=worker.wait, name="worker-reaper", daemon=True).start()
    os.environ["LEDGER_PROJECTION_WORKER"] = "external"  # read by each API process
    try:
        uvicorn.run("api.app:create_app", factory=True, workers=n, **options)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=10)
    return 0


def check_startup(settings: Any, log_key: bool = True) -> None:
    """Open both databases and the log's key before serving, so that a wrong URL, a database
    that is down or a key file that cannot be made is one line naming its setting (raised as
    SettingsError), not a traceback from a server half started."""
    from persistence.settings import SettingsError
    from persistence.signing import LogKeyError, LogKeyFile

    _check_database("LEDGER_DATABASE_URL", settings.database_url)
    _check_database("LEDGER_VIEWS_URL", settings.views_url)
    if settings.views_read_url != settings.views_url:
        _check_database("LEDGER_VIEWS_READ_URL", settings.views_read_url)
    if not log_key:
        return  # the worker never signs: it must not make a key of its own
    try:
        LogKeyFile(settings.log_key, settings.log_origin or None).keys()
    except (LogKeyError, OSError) as exc:
        raise SettingsError("LEDGER_LOG_KEY", f"cannot be used: {exc}") from None


def _check_database(name: str, url: str) -> None:
    """SettingsError naming `name` when the database at `url` cannot be opened."""
    from persistence.settings import SettingsError
    from projections.failures import describe

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        raise SettingsError(name, f"cannot be opened ({masked(url)}): {describe(exc)}") from None
    finally:
        engine.dispose()


def masked(url: str) -> str:
    """A database URL fit for a log line: its password replaced by ***."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_admin_key(database_url: str, log_format: str) -> None:
    """On a ledger without any key, make the `admin` key and show it once, on stderr only
    (not through logging, so no log file or handler ever receives it)."""
    from api import keys

    engine = _engine(database_url)
    try:
        keys.create_schema(engine)
        secret = keys.ensure_admin(engine)
    finally:
        engine.dispose()
    if secret is not None:
        if log_format == "json":
            text = "Created the API key 'admin' (all scopes), shown once: keep it"
            logs.emit(log_format, text, admin_key=secret)
            return
        logs.emit(
            log_format,
            f"Created the API key 'admin' (all scopes). It is shown once, here, and cannot be "
            f"recovered:\n\n    {secret}\n\nSend it as 'Authorization: Bearer <key>'; make "
            "narrower keys with `ledger keys create`.",
        )


def _engine(database_url: str) -> Any:
    from persistence.schema import make_engine

    return make_engine(database_url, immediate=True)


def keys_command(args: argparse.Namespace) -> int:
    """`ledger keys create|list|revoke` on the event database (LEDGER_DATABASE_URL)."""
    from api import keys
    from persistence.settings import Settings

    settings = Settings.from_env()
    _check_database("LEDGER_DATABASE_URL", settings.database_url)
    engine = _engine(settings.database_url)
    try:
        keys.create_schema(engine)
        if args.keys_command == "create":
            secret = keys.create(
                engine, args.name, args.scope, args.project or None, binding=_binding(args)
            )
            print(secret)
            print("(shown once: only its hash is stored)", file=sys.stderr)
        elif args.keys_command == "revoke":
            keys.revoke(engine, args.name)
            print(
                f"revoked {args.name} (other processes stop accepting it within their cache "
                "refresh, LEDGER_KEY_REFRESH seconds)",
                file=sys.stderr,
            )
        else:
            _print_keys(keys.list_keys(engine))
    except keys.KeyRefused as err:
        print(f"ledger keys: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


def _binding(args: argparse.Namespace) -> str | None:
    """The OpenTera identity `--opentera-device`/`--opentera-participant` bind the key to."""
    from api import keys

    if args.opentera_device is not None:
        return keys.binding_of("opentera-device", args.opentera_device)
    if args.opentera_participant is not None:
        return keys.binding_of("opentera-participant", args.opentera_participant)
    return None


def _print_keys(rows: list[Any]) -> None:
    from projections.present import iso

    print(f"{'name':<20} {'scopes':<26} {'projects':<20} {'bound to':<28} {'created':<26} revoked")
    for k in rows:
        projects = ",".join(k.projects) if k.projects is not None else "*"
        revoked = iso(k.revoked_at) if k.revoked_at is not None else "-"
        print(
            f"{k.name:<20} {','.join(k.scopes):<26} {projects:<20} {k.binding or '-':<28} "
            f"{iso(k.created_at):<26} {revoked}"
        )


def project(args: argparse.Namespace) -> int:
    """Run the projection worker in the foreground until stopped (or the parent exits): it
    applies events while it leads the workers on its views database, else it follows."""
    import os
    import signal

    from api.bootstrap import bootstrap
    from persistence.runtime import settle_gc
    from persistence.settings import Settings
    from projections import leadership

    settings = Settings.from_env()
    parent = _parent_pid()
    check_startup(settings, log_key=False)
    logs.configure(settings.log_format)
    container = bootstrap(settings)
    settle_gc()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def should_stop() -> bool:
        return bool(stopping) or (parent > 0 and os.getppid() != parent)

    from replay import rebuild

    lead = leadership.Leadership(container.runner.engine)
    leadership.create_schema(container.runner.engine)
    fill = rebuild.for_worker(container.store, container.runner.engine)
    try:
        container.runner.run_forever(args.poll_interval, should_stop, lead, fill)
    except KeyboardInterrupt:
        pass
    finally:
        lead.step_down()
        container.store.dispose()
    return 0


def _parent_pid() -> int:
    """LEDGER_PARENT_PID: the `ledger serve` whose worker this is (0: none)."""
    from persistence.settings import SettingsError

    raw = os.environ.get("LEDGER_PARENT_PID", "0")
    if not raw.isdigit():
        raise SettingsError("LEDGER_PARENT_PID", "must be a process id (set by ledger serve)")
    return int(raw)


def log_key_command(args: argparse.Namespace) -> int:
    """`ledger log-key show|rotate`: the transparency log's signing key (never printed: only
    its public verifier keys)."""
    from persistence.settings import Settings
    from persistence.signing import LogKeyError, load_or_create, rotate

    settings = Settings.from_env()
    try:
        if args.log_key_command == "rotate":
            keys = rotate(settings.log_key, args.origin)
            print(f"rotated the log key at {settings.log_key}; new verifier key:", file=sys.stderr)
        else:
            keys = load_or_create(settings.log_key, settings.log_origin or None)
    except (LogKeyError, OSError) as err:
        print(f"ledger log-key: {err}", file=sys.stderr)
        return 2
    print("\n".join(keys.verifier_keys))
    return 0


def _add_log_key_parser(sub: Any) -> None:
    k = sub.add_parser(
        "log-key",
        help="the transparency log's signing key: show its verifier keys, rotate it",
        description="The Ed25519 key that signs checkpoints (LEDGER_LOG_KEY). `show` prints "
        "the verifier keys, current first, then those retired by rotation (what GET "
        "/v1/log/key answers); `rotate` makes a new key and retires the old one, whose "
        "checkpoints still verify. The private key is never printed.",
    )
    ks = k.add_subparsers(dest="log_key_command", required=True)
    ks.add_parser("show", help="print the verifier keys (makes the key if there is none)")
    r = ks.add_parser("rotate", help="make a new signing key; keep the old verifier key")
    r.add_argument("--origin", help="a new name for the log (its checkpoints' origin line)")
    k.set_defaults(func=log_key_command)


def _add_keys_parser(sub: Any) -> None:
    from api.keys import SCOPES

    k = sub.add_parser("keys", help="create, list and revoke API keys")
    ks = k.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", help="make a key and print it (once)")
    c.add_argument("name", help="the key's name (Basic-auth dialects send it as the user)")
    c.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        help="repeatable; admin implies all",
    )
    c.add_argument("--project", action="append", help="limit the key to this project (repeatable)")
    bound = c.add_mutually_exclusive_group()
    bound.add_argument(
        "--opentera-device",
        metavar="ID",
        help="bind the key to OpenTera device ID: the OpenTera routes apply the device API's rules",
    )
    bound.add_argument(
        "--opentera-participant",
        metavar="ID",
        help="bind the key to OpenTera participant ID: it sees and edits its own sessions only",
    )
    ks.add_parser("list", help="names, scopes, projects, binding, created and revoked times")
    r = ks.add_parser("revoke", help="revoke a key by name")
    r.add_argument("name")
    k.set_defaults(func=keys_command)


def _add_serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP API and the projection worker")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from a proxy on this host (off: not needed)",
    )
    p.add_argument(
        "--worker",
        choices=("process", "thread", "external"),
        default="process",
        help="run the projection worker as a child process (default) or a thread, or not at "
        "all (external: `ledger project` runs elsewhere)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N API processes on this port (one projection worker process beside them)",
    )
    p.set_defaults(func=serve)


def main(argv: list[str] | None = None) -> int:
    from api.cli_schema import add_migrate_parser

    parser = argparse.ArgumentParser(
        prog="ledger",
        description="Session Ledger: an event-sourced ledger of sessions. "
        "Configure with LEDGER_DATABASE_URL (default sqlite:///var/ledger.db).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve_parser(sub)
    _add_keys_parser(sub)
    _add_log_key_parser(sub)
    add_migrate_parser(sub)
    w = sub.add_parser("project", help="run the projection worker alone (scale-out)")
    w.add_argument("--poll-interval", type=float, default=0.005, help="seconds between polls")
    w.set_defaults(func=project)
    try:
        from replay.cli import add_replay_parser
    except ImportError:  # replay tools not installed in this build
        pass
    else:
        add_replay_parser(sub)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for `replay report`
    from sqlalchemy.exc import OperationalError

    from persistence.settings import SettingsError
    from projections.failures import describe

    tool = " ".join(str(getattr(args, a)) for a in _COMMAND_ATTRS if getattr(args, a, None))
    try:
        return int(args.func(args) or 0)
    except SettingsError as err:
        # One line naming the setting, no traceback: the operator fixes the environment.
        print(f"ledger {tool}: configuration error: {err}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # a database that cannot be reached (credentials blanked)
        where = "LEDGER_DATABASE_URL or LEDGER_VIEWS_URL"
        print(f"ledger {tool}: cannot use the database ({where}): {describe(exc)}", file=sys.stderr)
        return 2


# The argparse destinations that name the command run, outermost first.
_COMMAND_ATTRS = ("command", "replay_command")


if __name__ == "__main__":
    sys.exit(main())
