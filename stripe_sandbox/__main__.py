"""`python -m stripe_sandbox --port 12111`: the Stripe sandbox on its own, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from stripe_sandbox import StripeSandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stripe_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="sk_test_sandbox", help="the secret key clients must send (sk_test_...)")
    parser.add_argument(
        "--webhook",
        nargs=2,
        action="append",
        default=[],
        metavar=("URL", "SECRET"),
        help="deliver platform events to URL, signed with SECRET (repeatable)",
    )
    parser.add_argument(
        "--connect-webhook",
        nargs=2,
        action="append",
        default=[],
        metavar=("URL", "SECRET"),
        help="deliver connected accounts' events to URL, signed with SECRET (repeatable)",
    )
    parser.add_argument("--retry-delays", default="1,5,25,125", help="seconds between delivery attempts")
    args = parser.parse_args(argv)
    try:
        sandbox = StripeSandbox(
            args.api_key, args.host, args.port, retry_delays=[float(d) for d in args.retry_delays.split(",") if d]
        )
    except ValueError as exc:
        parser.error(str(exc))
    for url, secret in args.webhook:
        sandbox.add_webhook_endpoint(url, secret, connect=False)
    for url, secret in args.connect_webhook:
        sandbox.add_webhook_endpoint(url, secret, connect=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with sandbox:
        print(
            f"Stripe sandbox on {sandbox.url} (api key {sandbox.api_key}); dashboard {sandbox.url}/_sandbox", flush=True
        )
        done.wait()
    print("Stripe sandbox stopped", flush=True)


if __name__ == "__main__":
    main()
