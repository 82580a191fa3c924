"""`identdesk qa run` and `identdesk qa phone`: recorded-media sessions."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import aiohttp

from identdesk.cli_doc_video import video_problem
from identdesk.clients import (
    PhoneClient,
    ProtocolError,
    activate_and_consent,
    client_ssl,
    create_case,
    file_tracks,
    mail_code_source,
    outbox_mails,
)
from identdesk.qa import QaError, load_script, probe_video, run_local, run_session
from signaling.config import media_workers_from_env, parse_media_workers


def register(commands: Any) -> None:
    qa = commands.group("qa", "recorded-media test sessions")
    run = qa.add_parser(
        "run", help="play VIDEO as the phone's camera through the whole path"
    )
    run.add_argument("video")
    run.add_argument("--script", help="STEPS.json: timed capture/torch/decide steps")
    run.add_argument(
        "--server", help="URL of a running server (default: start one here)"
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument(
        "--data-dir", type=Path, help="data folder of the in-process server"
    )
    run.add_argument(
        "--media-workers",
        type=parse_media_workers,
        default=None,
        help="media worker processes of the in-process server (default: as "
        "IDENTDESK_MEDIA_WORKERS, else one per core; 0 = none)",
    )
    _remote_options(run)
    run.add_argument("--agent", default=os.environ.get("IDENTDESK_AGENT", ""))
    run.add_argument(
        "--password",
        default=os.environ.get("IDENTDESK_AGENT_PASSWORD", ""),
        help="agent password (or IDENTDESK_AGENT_PASSWORD)",
    )
    run.set_defaults(func=cmd_run)

    phone = qa.add_parser(
        "phone", help="create a case and wait in the queue as the phone, playing VIDEO"
    )
    phone.add_argument("video")
    port = os.environ.get("IDENTDESK_PORT", "8443")
    phone.add_argument(
        "--server",
        default=f"https://127.0.0.1:{port}",
        help="URL of the running server (default https://127.0.0.1:$IDENTDESK_PORT)",
    )
    phone.add_argument("--loop", action="store_true", help="repeat the video")
    phone.add_argument(
        "--outbox",
        type=Path,
        default=Path(os.environ.get("IDENTDESK_DATA_DIR", "data")) / "outbox",
        help="the server's mail outbox, where the phone reads the in-call code the "
        "agent sends (default: $IDENTDESK_DATA_DIR/outbox, else data/outbox)",
    )
    _remote_options(phone)
    phone.set_defaults(func=cmd_phone)


def _remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-key",
        default=os.environ.get("IDENTDESK_API_KEY", ""),
        help="partner API key (or IDENTDESK_API_KEY)",
    )
    parser.add_argument("--ca", default="certs/ca.pem", help="CA to trust for --server")
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification")


def _ssl(args: argparse.Namespace) -> Any:
    ca = args.ca if args.ca and Path(args.ca).exists() else None
    return client_ssl(ca, args.insecure)


def _not_a_video(path: str) -> bool:
    """Says why `path` is not a video, as `doc analyze` would, before a server
    starts; True when it is not one."""
    problem = video_problem(path)
    if problem:
        print(f"error: cannot read {path}: {problem}", file=sys.stderr)
    return problem is not None


def cmd_run(args: argparse.Namespace) -> int:
    if _not_a_video(args.video):
        return 2
    try:
        info = probe_video(args.video)
        script = load_script(args.script, info.seconds)
        if args.server:
            if not (args.api_key and args.agent and args.password):
                raise QaError("--server needs --api-key, --agent and --password")
            report = asyncio.run(
                run_session(
                    args.video,
                    script,
                    args.server.rstrip("/"),
                    args.api_key,
                    args.agent,
                    args.password,
                    _ssl(args),
                )
            )
        else:
            workers = args.media_workers
            if workers is None:
                workers = media_workers_from_env()
            report = asyncio.run(
                run_local(args.video, script, args.data_dir, media_workers=workers)
            )
    except QaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ProtocolError, aiohttp.ClientError, OSError) as exc:
        print(f"error: the QA session failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.text())
    return 0 if report.decision else 1


def cmd_phone(args: argparse.Namespace) -> int:
    if _not_a_video(args.video):
        return 2
    try:
        probe_video(args.video)
    except QaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.api_key:
        print(
            "error: give the partner API key with --api-key or IDENTDESK_API_KEY",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_phone(args))
    except (ProtocolError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _phone(args: argparse.Namespace) -> int:
    ssl_ctx = _ssl(args)
    base = args.server.rstrip("/")
    async with aiohttp.ClientSession() as http:
        # an address of this phone's own, so its code is told from other cases'
        address = f"qa-{secrets.token_hex(6)}@example.org"
        case = await create_case(http, base, args.api_key, ssl_ctx, email=address)
        consent = await activate_and_consent(http, case["activation_url"], ssl_ctx)
        print(f"case {case['id']} created, transaction number {consent['tan']}")
        if not args.outbox.is_dir():
            print(
                f"note: no mail outbox at {args.outbox}; this phone cannot answer "
                "the in-call code (give --outbox)",
                file=sys.stderr,
            )
        phone = PhoneClient(
            http,
            base,
            ssl_ctx,
            tracks=file_tracks(args.video, args.loop),
            code_source=mail_code_source(outbox_mails(args.outbox), address),
        )
        await phone.join(consent["tan"])
        print("waiting in the queue; take the case in the agent console", flush=True)
        seen = 0
        try:
            while True:
                await asyncio.sleep(0.5)
                for msg in phone.log.messages[seen:]:
                    print(
                        f"  {msg['type']}: "
                        + json.dumps(
                            {k: v for k, v in msg.items() if k not in ("type", "sdp")}
                        )
                    )
                    if msg["type"] == "ended":
                        return 0
                seen = len(phone.log.messages)
                if phone.ws is None or phone.ws.closed:
                    print("the server closed the connection", file=sys.stderr)
                    return 1
        finally:
            await phone.close()
