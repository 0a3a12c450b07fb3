"""An agent's console in a terminal: connect, go available, print what others change.

    presence-server token --company acme --sub a-17 --role agent > token
    python examples/console.py --url ws://127.0.0.1:8080/v1/agent --token "$(cat token)"

Ctrl-C says ``bye`` and ends the session. A supervisor's kick (4510) or a login
elsewhere (4509) ends it too; a lost network doesn't: the console reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from client_sdk import AgentConsole, PresenceError, SessionClosed


async def run(url: str, token: str) -> None:
    console = AgentConsole(url, token, client={"app": "examples/console.py"})
    welcome = await console.connect()
    try:
        print(f"session {welcome.session} (resumed: {welcome.resumed})")
        print(f"statuses: {', '.join(s['value'] for s in welcome.statuses)}")
        ack = await console.set_status("available")
        print(f"available; routable: {ack.state['routable']}")
        async for state, event in console.states():
            cause = f"{event['type']} {event['value']}" if event else "reconnected"
            print(f"{cause}: {state['status']} / {state['activity']}")
        print(f"closed by the server ({console.close_code})")
    except SessionClosed as exc:
        print(f"closed by the server ({exc.code}): {exc.reason}")
    finally:
        await console.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/v1/agent")
    parser.add_argument(
        "--token",
        default=os.environ.get("PRESENCE_TOKEN"),
        help="an agent token (default: $PRESENCE_TOKEN, which keeps it out of `ps`)",
    )
    args = parser.parse_args()
    if not args.token:
        parser.error("a token is required: --token or $PRESENCE_TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # asyncio.run cancels run() on Ctrl-C, and its finally still closes the console.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run(args.url, args.token))
        except (OSError, PresenceError) as exc:  # e.g. no server there, or a bad token (4501)
            parser.exit(1, f"{exc}\n")


if __name__ == "__main__":
    main()
