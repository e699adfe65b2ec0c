#!/usr/bin/env python3
"""truncproxy.py - a loopback TCP relay that cuts responses short.

Relays each client connection to UPSTREAM unchanged (so SigV4 signatures stay valid),
but closes both sides once LIMIT bytes of the answer have gone back: a response whose
body is larger arrives truncated, as from a server or network that dies mid-transfer.
Stops by itself after LIFETIME seconds. Prints "READY port" when listening.

usage: truncproxy.py UPSTREAM_HOST UPSTREAM_PORT LIMIT LIFETIME
"""
import socket
import sys
import threading
import time


def pipe(src, dst, limit, done):
    sent = 0
    try:
        while limit is None or sent < limit:
            want = 65536 if limit is None else min(65536, limit - sent)
            data = src.recv(want)
            if not data:
                break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        done.set()


def serve(conn, upstream, limit):
    try:
        up = socket.create_connection(upstream, timeout=10)
    except OSError:
        conn.close()
        return
    done = threading.Event()
    threading.Thread(target=pipe, args=(conn, up, None, done), daemon=True).start()
    threading.Thread(target=pipe, args=(up, conn, limit, done), daemon=True).start()
    done.wait(30)
    for s in (conn, up):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def main():
    host, port, limit, lifetime = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.5)
    print("READY", srv.getsockname()[1], flush=True)
    end = time.time() + lifetime
    while time.time() < end:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn, (host, port), limit), daemon=True).start()
    srv.close()


if __name__ == "__main__":
    main()
