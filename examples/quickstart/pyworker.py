#!/usr/bin/env python3
"""An example vigil worker in Python (standard library only).

vigil is not Go-only: a worker in any language speaks two small protocols.

* Readiness: JSON lines written to the file descriptor named by NOTIFY_PIPE
  (fd 3 under vigil): {"ready": true}, {"healthy": true}, {"stopping": true}.
* The supervisor socket (VIGIL_SUPERVISOR_SOCKET): JSON lines over a Unix
  socket. The worker registers with {"id": 2, "do": "register", "state":
  {...}}, waits for the reply that carries "finished": true, then answers
  the calls the supervisor forwards to it. Calls this side makes have even
  ids; the supervisor's have odd ones. Each call gets a final reply with
  "finished": true; a failure adds "failed": true and
  "error": {"class", "message"}.

This worker answers one operation, "ping", reconnects when the supervisor
goes away, reports healthy every few seconds, and exits cleanly on SIGINT
or SIGTERM. Run by hand (no NOTIFY_PIPE, no socket) it just idles.
"""

import json
import os
import random
import signal
import socket
import sys
import time

HEALTH_INTERVAL = 2.0
stopping = False


def log(*args):
    print("pyworker:", *args, file=sys.stderr, flush=True)


class Notifier:
    """Writes readiness messages to NOTIFY_PIPE; a no-op when unset."""

    def __init__(self):
        fd = os.environ.get("NOTIFY_PIPE", "")
        self.fd = int(fd) if fd else None

    def send(self, **message):
        if self.fd is None:
            return
        try:
            os.write(self.fd, (json.dumps(message) + "\n").encode())
        except OSError as error:
            log("readiness pipe:", error)
            self.fd = None


def on_signal(signum, frame):
    global stopping
    stopping = True


def nap(seconds):
    """Sleeps, but returns early once a stop is asked for."""
    end = time.monotonic() + seconds
    while not stopping and time.monotonic() < end:
        time.sleep(min(0.1, max(end - time.monotonic(), 0)))


def answer(call):
    """The reply fields of one incoming call."""
    if call.get("do") == "ping":
        return {"pong": True, "pid": os.getpid()}
    return {
        "failed": True,
        "error": {"class": "NoMethodError", "message": "unknown operation %r" % call.get("do")},
    }


def serve(path, state, notifier, next_beat):
    """One connection: register, then answer calls until it closes.
    Returns the time of the next heartbeat."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.settimeout(0.5)
        sock.sendall((json.dumps({"id": 2, "do": "register", "state": state}) + "\n").encode())
        buffer = b""
        while not stopping:
            if time.monotonic() >= next_beat:
                notifier.send(healthy=True)
                next_beat = time.monotonic() + HEALTH_INTERVAL
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                log("supervisor closed the connection")
                return next_beat
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    log("ignoring bad line")
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("id") == 2 and message.get("finished"):
                    log("registered as", message.get("connection_id"))
                elif "do" in message:
                    reply = {"id": message.get("id"), "finished": True}
                    reply.update(answer(message))
                    sock.sendall((json.dumps(reply) + "\n").encode())
    return next_beat


def main():
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    notifier = Notifier()
    path = os.environ.get("VIGIL_SUPERVISOR_SOCKET", "")
    state = {
        "process_id": os.getpid(),
        "name": os.environ.get("VIGIL_SERVICE", "pyworker"),
        "language": "python",
    }
    if os.environ.get("VIGIL_INSTANCE", "").isdigit():
        state["instance"] = int(os.environ["VIGIL_INSTANCE"])
    notifier.send(ready=True)
    next_beat = time.monotonic()
    pause = 0.1
    while not stopping:
        if path:
            try:
                next_beat = serve(path, state, notifier, next_beat)
                pause = 0.1
            except OSError as error:
                log("supervisor:", error)
        else:
            if time.monotonic() >= next_beat:
                notifier.send(healthy=True)
                next_beat = time.monotonic() + HEALTH_INTERVAL
        # jittered, growing pause before reconnecting, capped at 3 seconds
        nap(pause * random.uniform(0.5, 1.0) if path else 0.5)
        pause = min(pause * 2, 3.0)
    notifier.send(stopping=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
