"""An access run's messages through SMTP: one connection for the run (mail.delivery.Mailer, as
notifications/access.py sends them) against the baseline, a new connection per message
(mail.delivery.deliver, as one-off mail goes), the same messages to the same local aiosmtpd.

    python bench/access_mail.py [--messages 2000]

Stdout (`key=value`): per_message_connection_per_s (the baseline), one_connection_per_s, and
ratio (how many times faster). Locally there is no TLS and no network: against a real mail
server each new connection also costs a TLS handshake and round trips, so the ratio only grows.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from harness import log, out

from community.mail.delivery import Mailer, build_message, deliver
from community.settings import Settings


class Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


async def main(count: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings(
            env="test", data_dir=Path(tempfile.mkdtemp()), database_url="postgresql://unused/unused", redis_url="redis://unused",
            secret_key="bench-" + "x" * 40, smtp_url=f"smtp://127.0.0.1:{port}",
        )
        messages = [
            build_message(settings, to=f"member{i}@example.com", subject="You now have access to Yoga in Bench",
                          text="Hello,\n\nYou now have access to these groups in Bench:\n  - Yoga\n", html="<p>Hello</p>", message_id=f"bench-{i}")
            for i in range(count)
        ]
        started = time.perf_counter()
        for message in messages:
            await deliver(settings, message, file_stem="unused")
        baseline = time.perf_counter() - started
        log(f"{count} messages, a connection each: {baseline:.2f}s")
        mailer = Mailer(settings)
        started = time.perf_counter()
        await mailer.connect()
        for message in messages:
            await mailer.send_message(message, "unused")
        await mailer.close()
        reused = time.perf_counter() - started
        log(f"{count} messages on one connection: {reused:.2f}s")
        out("per_message_connection_per_s", f"{count / baseline:.0f}")
        out("one_connection_per_s", f"{count / reused:.0f}")
        out("ratio", f"{baseline / reused:.1f}")
    finally:
        controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    asyncio.run(main(parser.parse_args().messages))
