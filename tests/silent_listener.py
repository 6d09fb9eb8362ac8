#!/usr/bin/env python3
"""A TCP listener that never answers, for walrouter tests (tests/cluster.sh silent-start).

usage: silent_listener.py [PORT]

Listens on 127.0.0.1:PORT (0 or no argument: the first free port from 26000 up,
below Linux's ephemeral range), accepts every connection, reads and discards
what the client sends and never sends anything, keeping each connection open
until the client closes it: a client's connection attempt completes the TCP
handshake and then waits forever for the server's first message. Prints the
port as line 1 of stdout, then runs until killed. Standard library only.
"""
import os
import selectors
import socket
import sys
import time

FIRST_PORT, LAST_PORT = 26000, 32767


def listen(port):
    last_error = None
    for p in [port] if port else range(FIRST_PORT, LAST_PORT + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # No SO_REUSEADDR: a port that any socket uses (even a client's local
        # port) counts as taken, as in tests/cluster.sh.
        try:
            s.bind(("127.0.0.1", p))
            s.listen(128)
            return s
        except OSError as e:
            s.close()
            last_error = e
    where = port if port else "%d-%d" % (FIRST_PORT, LAST_PORT)
    sys.exit("silent_listener: cannot listen on 127.0.0.1:%s: %s" % (where, last_error))


def main():
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not sys.argv[1].isdigit()):
        sys.exit("usage: silent_listener.py [PORT]")
    port = int(sys.argv[1]) if len(sys.argv) == 2 else 0
    if port > 65535:
        sys.exit("silent_listener: bad port %d" % port)
    # Started in the background: hold no descriptor of the caller's but 0-2
    # (an inherited pipe would keep the caller's reader waiting).
    os.closerange(3, 1024)
    server = listen(port)
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    print(server.getsockname()[1], flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is server:
                try:
                    conn, _ = server.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # e.g. out of descriptors: leave it in the backlog
                    time.sleep(0.1)
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # the client closed (or reset) its end
                sel.unregister(sock)
                sock.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
