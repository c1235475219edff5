"""The `ledger` command: `serve` runs the API and the projection worker on the embedded
default; `replay ...` holds the analysts' and auditors' tools (see replay/)."""

from __future__ import annotations

import argparse
import logging
import sys


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from domain.runtime import settle_gc

    settings = Settings.from_env(projection_worker=args.worker)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(
        f"Session Ledger on http://{args.host}:{args.port}  (events: {settings.database_url}, "
        f"views: {settings.views_url}; OpenAPI at /docs)",
        file=sys.stderr,
    )
    app = create_app(settings)
    settle_gc()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        # The ledger never reads the client's address or scheme, so by default it skips
        # uvicorn's X-Forwarded-* rewriting (a middleware layer on every request).
        proxy_headers=args.proxy_headers,
    )
    return 0


def project(args: argparse.Namespace) -> int:
    """Run the projection worker in the foreground until stopped (or the parent exits)."""
    import os
    import signal

    from api.bootstrap import bootstrap
    from api.settings import Settings
    from domain.runtime import settle_gc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    container = bootstrap(Settings.from_env())
    settle_gc()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    parent = int(os.environ.get("LEDGER_PARENT_PID", "0"))

    def should_stop() -> bool:
        return bool(stopping) or (parent > 0 and os.getppid() != parent)

    try:
        container.runner.run_forever(args.poll_interval, should_stop)
    except KeyboardInterrupt:
        pass
    finally:
        container.store.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ledger",
        description="Session Ledger: an event-sourced ledger of sessions. "
        "Configure with LEDGER_DATABASE_URL (default sqlite:///var/ledger.db).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
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
        choices=("process", "thread"),
        default="process",
        help="run the projection worker as a child process (default) or a thread",
    )
    p.set_defaults(func=serve)
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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
