"""Acknowledgement latency with the daemon in IDLE, one request at a time.

Run: .venv/bin/python bench/latency.py [--n 200] [--seed 21]

Each generated request is sent with smtplib to the SmtpRelay (queue = True: it answers 250
once it has taken the message and delivers it to Dovecot's LMTP right after, like a real MTA).
The clock starts when smtplib's sendmail returns (the relay accepted the request) and stops
when the acknowledgement is in the agency's INBOX, seen by a separate IMAP client that was
logged in and had the folder selected before the send and then sends NOOP every 5 ms (Dovecot
reports new messages on NOOP; IDLE would add Dovecot's own notification delay to the
measurement). The split: request accepted -> ack handed to the relay by mailbot (the relay's
acceptance time of the ack), and -> ack in the mailbox. After each acknowledgement the script
waits for the coordinator alert and 0.5 s more, so the daemon is back in IDLE for the next one.
"""

from __future__ import annotations

import argparse
import atexit
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.generate import generate  # noqa: E402
from bench.harness import (  # noqa: E402
    LOOPBACK,
    MVAI,
    PASSWORD,
    addresses,
    command_line,
    machine,
    mailbot_process,
    message_id,
    sender,
    summary,
    table,
    testbed,
    uptime,
)
from tests.testbed import send_mail  # noqa: E402

_FORWARDED_FROM = re.compile(rb"Forwarded message -+\r?\nFrom: [^<\r\n]*<([^>]+)>")


def ack_recipient(raw: bytes) -> str:
    """Where mailbot sends the acknowledgement: the sender, or a forward's original sender."""
    found = _FORWARDED_FROM.search(raw)
    return found.group(1).decode().lower() if found else sender(raw)


def exists(responses: list[tuple[int, bytes]]) -> int | None:
    counts = [n for n, what in responses if what == b"EXISTS"]
    return counts[-1] if counts else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    load_before = uptime()
    print(f"load before (uptime): {load_before}")
    # On the wire SMTP lines end in CRLF; smtplib sends bytes as they are, and the relay
    # (like any MTA) would see one endless line in a message with bare LF line ends.
    messages = [
        raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        for _name, raw in generate(args.n, seed=args.seed)
    ]
    users = set().union(*(addresses(raw) for raw in messages))
    work = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    atexit.register(shutil.rmtree, work, True)  # also when a run fails
    total: list[float] = []
    to_relay: list[float] = []
    relay_to_box: list[float] = []
    mismatched = 0
    with testbed(users) as (dovecot, relay):
        proc = mailbot_process(work, dovecot, relay)
        proc.start()
        try:
            time.sleep(1.0)  # let it reach IDLE
            load_start = uptime()
            for number, raw in enumerate(messages, 1):
                rcpt = ack_recipient(raw)
                request_id = message_id(raw)
                with dovecot.imap_client(rcpt, PASSWORD) as client:
                    baseline = int(client.select_folder("INBOX")[b"EXISTS"])
                    seen_relay = len(relay.received)
                    send_mail(LOOPBACK, relay.port, raw, sender(raw), [MVAI])
                    accepted = time.monotonic()
                    deadline = accepted + 30
                    while True:
                        count = exists(client.noop()[1])
                        if count is not None and count > baseline:
                            arrived = time.monotonic()
                            break
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"request {number}: no ack for {rcpt} in 30 s")
                        time.sleep(0.005)
                    found = client.search(["HEADER", "In-Reply-To", request_id or ""])
                    mismatched += not found
                ack = next(
                    (
                        m
                        for m in relay.received[seen_relay:]
                        if (message_id(m.data) or "").startswith("ack.")
                    ),
                    None,
                )
                total.append(arrived - accepted)
                if ack is not None:
                    to_relay.append(ack.at - accepted)
                    relay_to_box.append(arrived - ack.at)
                # The alert goes out right after the ack; then let the daemon get back to IDLE.
                alert_deadline = time.monotonic() + 10
                while time.monotonic() < alert_deadline and not any(
                    (message_id(m.data) or "").startswith("alert.")
                    for m in relay.received[seen_relay:]
                ):
                    time.sleep(0.01)
                time.sleep(0.5)
                if number % 25 == 0:
                    print(f"  {number}/{args.n}: last {total[-1]:.3f} s", flush=True)
            load_end = uptime()
        finally:
            code = proc.stop()
        pipeline_ms = [float(v) for v in re.findall(r"outcome=processed ms=(\d+)", proc.log())]
    load_after = uptime()
    print(f"daemon exit code {code}; acks not matched by In-Reply-To: {mismatched}")
    pipeline = [ms / 1000 for ms in pipeline_ms]
    rows = [
        ["measurement", f"{args.n} requests, one at a time"],
        ["accepted by relay -> ack in agency INBOX", summary(total) + " (target p95 <= 1.5 s)"],
        ["  accepted -> ack handed to SMTP by mailbot", summary(to_relay) if to_relay else "-"],
        ["  ack handed to SMTP -> in INBOX", summary(relay_to_box) if relay_to_box else "-"],
        ["  pipeline per message (daemon log ms=)", summary(pipeline) if pipeline else "-"],
        [
            "load avg (1/5/15 min): before | start | end | after",
            f"{load_before} | {load_start} | {load_end} | {load_after}",
        ],
    ]
    print()
    print(table(rows))
    print(f"\nreproduce: {command_line()}")


if __name__ == "__main__":
    main()
