#!/usr/bin/python3
# A provider's heartbeat in Python (pyzmq), written from README.md's heartbeat protocol alone, to prove the
# contract is implementable outside Node: bind a PUB at --endpoint, and every --interval-ms send
# two frames, b"hb" and the provider id in UTF-8. Same command line, stdin commands and stdout
# lines as heartbeat-emitter.ts; it owns one socket and never sends anything else.
#
#   /usr/bin/python3 test/helpers/heartbeat-emitter.py --endpoint tcp://127.0.0.1:0 --id p1 --interval-ms 100
import argparse
import json
import os
import select
import signal
import sys
import time

import zmq

BIND_ATTEMPTS = 20  # a restarted emitter may find its old port briefly unavailable
BIND_RETRY_S = 0.1


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description="publish Roster heartbeats")
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:0")
    parser.add_argument("--id", required=True)
    parser.add_argument("--interval-ms", type=float, default=1000)
    args = parser.parse_args()
    if not args.id or args.interval_ms <= 0:
        parser.error("--id must be non-empty and --interval-ms positive")

    endpoint = args.endpoint
    if endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    interval = args.interval_ms / 1000.0
    provider_id = args.id.encode("utf-8")

    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    for attempt in range(1, BIND_ATTEMPTS + 1):
        try:
            pub.bind(endpoint)
            break
        except zmq.ZMQError:
            if attempt == BIND_ATTEMPTS:
                raise
            time.sleep(BIND_RETRY_S)
    bound = pub.getsockopt(zmq.LAST_ENDPOINT).decode("ascii")
    emit({"endpoint": bound, "pid": os.getpid()})

    def stop(_signum=None, _frame=None):
        pub.close(0)
        ctx.term()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    stdin = sys.stdin.fileno()
    pending = b""
    silent = False
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_at:
            if not silent:
                pub.send_multipart([b"hb", provider_id])
            next_at += interval
            if next_at < now:  # fell behind (a paused process): do not burst to catch up
                next_at = now + interval
        # Raw reads, not sys.stdin.readline(): a buffered reader would hide lines from select().
        ready, _, _ = select.select([stdin], [], [], max(0.0, next_at - time.monotonic()))
        if not ready:
            continue
        chunk = os.read(stdin, 4096)
        if not chunk:  # the parent is gone
            stop()
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            cmd = line.decode("utf-8", "replace").strip()
            if cmd == "silence":
                silent = True
                emit({"ok": "silence"})
            elif cmd == "resume":
                silent = False
                emit({"ok": "resume"})
            elif cmd:
                emit({"error": "unknown command %r" % cmd})


if __name__ == "__main__":
    main()
