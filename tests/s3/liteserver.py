#!/usr/bin/env python3
"""liteserver.py - a loopback HTTP/1.1 server answering GET and HEAD of objects in
unusual but legal ways, and in broken ones, for tests/s3/lite.sh (the first requests of
a process, made without libcurl: core/s3/http_lite.c).

Every object under /BUCKET/ is KIND or KIND-anything; the kind chooses the answer:
  plain     Content-Length, keep-alive (206 for a Range)
  chunked   Transfer-Encoding: chunked, in 100-byte chunks, a trailer line
  close     no Content-Length, HTTP/1.0, the body ends with the connection
  continue  an interim "100 Continue" response first
  drop      plain, then the connection is closed without a word (the client's next
            request on it finds it dead and must retry on a new one)
  norange   ignores Range: 200 and the whole object
  garbage   not HTTP at all
  short     Content-Length larger than the body sent, then close
  stall     reads the request and never answers
A key's body is BODY_BYTES (default 3000) bytes derived from its name. Prints
"READY port" when listening; logs "conn=N METHOD PATH" per request to stderr.

usage: liteserver.py LIFETIME_S
"""
import hashlib
import socket
import sys
import threading
import time


def body_of(path):
    size = 3000
    if '.' in path.rsplit('/', 1)[-1]:  # "plain.70000": a size
        size = int(path.rsplit('.', 1)[1])
    p = path.encode()
    return b''.join(hashlib.sha256(b'%s:%d' % (p, i)).digest() for i in range(size // 32 + 1))[:size]


def read_request(f):
    line = f.readline()
    if not line:
        return None
    hdrs = {}
    while True:
        h = f.readline()
        if h in (b'\r\n', b'\n', b''):
            break
        k, _, v = h.decode('latin-1').partition(':')
        hdrs[k.strip().lower()] = v.strip()
    method, path, _ = line.decode('latin-1').split(' ', 2)
    return method, path.split('?', 1)[0], hdrs


def serve(conn, n):
    f = conn.makefile('rb')
    try:
        while True:
            req = read_request(f)
            if not req:
                return
            method, path, hdrs = req
            sys.stderr.write('conn=%d %s %s\n' % (n, method, path))
            sys.stderr.flush()
            kind = path.rsplit('/', 1)[-1].split('-', 1)[0].split('.', 1)[0]
            body = body_of(path)
            total = len(body)
            status = '200 OK'
            extra = ''
            rng = hdrs.get('range', '')
            if rng.startswith('bytes=') and kind != 'norange':
                a, _, b = rng[6:].partition('-')
                a = int(a)
                b = min(int(b) if b else total - 1, total - 1)
                if a >= total:
                    conn.sendall(b'HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n')
                    continue
                body = body[a:b + 1]
                status = '206 Partial Content'
                extra = 'Content-Range: bytes %d-%d/%d\r\n' % (a, b, total)
            head = ('ETag: "%s"\r\nLast-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\n%s'
                    % (hashlib.md5(path.encode()).hexdigest(), extra))
            send_body = method != 'HEAD'
            if kind == 'stall':
                time.sleep(3600)
                return
            if kind == 'garbage':
                conn.sendall(b'SSH-2.0-not-http\r\n\r\n')
                return
            if kind == 'continue':
                conn.sendall(b'HTTP/1.1 100 Continue\r\n\r\n')
            if kind == 'chunked':
                out = 'HTTP/1.1 %s\r\n%sTransfer-Encoding: chunked\r\n\r\n' % (status, head)
                data = out.encode()
                if send_body:
                    for i in range(0, len(body), 100):
                        c = body[i:i + 100]
                        data += b'%x\r\n' % len(c) + c + b'\r\n'
                    data += b'0\r\nX-Trailer: yes\r\n\r\n'
                else:
                    data = ('HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n' % (status, head, len(body))).encode()
                conn.sendall(data)
                continue
            if kind == 'close':
                if not send_body:
                    conn.sendall(('HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n' % (status, head, len(body))).encode())
                    continue
                conn.sendall(('HTTP/1.0 %s\r\n%s\r\n' % (status, head)).encode() + body)
                return
            if kind == 'short':
                conn.sendall(('HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n' % (status, head, len(body))).encode()
                             + (body[:len(body) // 2] if send_body else b''))
                if send_body:
                    return
                continue
            conn.sendall(('HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n' % (status, head, len(body))).encode()
                         + (body if send_body else b''))
            if kind == 'drop':
                return
    except OSError:
        pass
    finally:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


def main():
    lifetime = float(sys.argv[1])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(64)
    print('READY %d' % s.getsockname()[1], flush=True)
    deadline = time.time() + lifetime
    s.settimeout(1)
    n = 0
    while time.time() < deadline:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        n += 1
        threading.Thread(target=serve, args=(c, n), daemon=True).start()


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'body':  # the expected bytes of a path
        sys.stdout.buffer.write(body_of(sys.argv[2]))
    else:
        main()
