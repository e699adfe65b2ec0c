#!/usr/bin/env python3
"""faultproxy.py - an HTTP/1.1 proxy in front of one S3 endpoint that adds latency,
bandwidth limits and faults (for the s3rig tests and benchmarks).  Python 3 stdlib only.

One process per endpoint, listening on a loopback address only.  Each client connection
gets its own keep-alive connection to TARGET.  Requests and responses are relayed byte for
byte (headers are not rewritten: SigV4 signatures stay valid), but the proxy parses the
HTTP framing (Content-Length, chunked, bodiless responses) so that it can count requests on
keep-alive connections and apply a fault to a single request.

usage: faultproxy.py --listen 127.0.0.2:18080 --target 127.0.0.1:8080 [options]

  --listen A:P        loopback address to listen on (127.x.y.z); port 0 = any free port
                      (the READY line tells which)
  --target H:P        the upstream HTTP server (Swift s3api, nginx, ...)
  --delay-ms D        delay every request by D ms before it is forwarded (time to first
  --jitter-ms J       byte), plus uniform(0..J) ms.  Each request on a keep-alive
                      connection is delayed on its own; connections do not wait for each
                      other.
  --rate R            cap response bytes per second, per client connection (suffix K/M/G,
                      1024-based; 0 = no cap)
  --total-rate R      cap response bytes per second over the whole instance
  --reset P           fraction of requests answered by an RST (SO_LINGER 0): half of them
                      (random) before any response byte, the other half after the response
                      head and half of the body (a chunked or close-delimited body: after
                      its first piece; a response without a body: before its head)
  --drop P            fraction of connections closed right after accept, unanswered (the
                      client sees an empty reply; an RST when its request already arrived)
  --error P           fraction of requests answered by the proxy itself with
  --error-status S    status S (500 InternalError or 503 SlowDown, default 503) and an S3
                      XML error body; the request body is read first and the connection
                      stays open (with Expect: 100-continue the connection is closed)
  --stall P           fraction of responses that stop after the head and half of the body
  --stall-s S         (as for --reset) for S seconds (default 10; 'inf' = until the client
                      gives up), then continue
  --blackhole         read everything, never answer anything
  --seed N            reproducible fault choices (per connection: connection k draws from
                      its own generator seeded by N and k, a fixed number of draws per
                      request, so sequential clients see the same faults every run)
  --control FILE      JSON object with any of the keys delay_ms, jitter_ms, rate,
                      total_rate, reset, drop, error, error_status, stall, stall_s,
                      blackhole.  Polled every 100 ms; when it changes (mtime, size or
                      inode) its keys override the command line for requests (and
                      connections) that arrive afterwards; a missing key, or a missing
                      file, means the command-line value.  Write it atomically (tmp + mv).
  --lifetime S        exit after S seconds, always (default 900; a SIGALRM backstop kills
                      the process 10 s later if the event loop is stuck)
  --pidfile F         write the PID there once listening (removed at exit)
  --log F             one line per request:
                      TIME METHOD PATH STATUS BODY_BYTES FAULT MS conn=N
                      (STATUS '-' when no status went out; FAULT '-' when none)
  --stats F           JSON counters written at exit (SIGTERM, SIGINT, lifetime)
  --quiet             no messages on stderr

Prints exactly one line on stdout once listening:
  READY listen=A:P target=H:P pid=N
and exits 0 on SIGTERM/SIGINT/end of lifetime, closing every socket.

A fault is drawn per request in the order reset, error, stall (independent draws, the
first hit wins); the delay applies before any of them.  Drop and blackhole are checked
when a connection is accepted; blackhole also for each request.
"""
import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import struct
import sys
import time

BUF = 256 * 1024              # read size for bodies
LIMIT = 1024 * 1024           # StreamReader limit (max head size; buffer is 2x)
HEAD_MAX = 256 * 1024         # larger request/response heads are refused
WBUF_HIGH = 1024 * 1024       # transport write buffer high-water mark
CONNECT_TIMEOUT = 10.0

ERR_CODES = {
    500: ("Internal Server Error", "InternalError",
          "We encountered an internal error. Please try again."),
    503: ("Slow Down", "SlowDown", "Please reduce your request rate."),
    502: ("Bad Gateway", "BadGateway", "faultproxy could not reach the upstream server."),
    400: ("Bad Request", "BadRequest", "faultproxy could not parse the request."),
}

KEYS = ("delay_ms", "jitter_ms", "rate", "total_rate", "reset", "drop", "error",
        "error_status", "stall", "stall_s", "blackhole")


class BadMessage(Exception):
    pass


class UpstreamGone(Exception):
    pass


class ClientGone(Exception):
    pass


def parse_rate(v):
    if isinstance(v, bool):
        raise ValueError("bad rate %r" % (v,))
    if isinstance(v, (int, float)):
        r = float(v)
    else:
        s = str(v).strip().upper()
        mult = 1
        if s.endswith("B"):
            s = s[:-1]
        if s and s[-1] in "KMG":
            mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[s[-1]]
            s = s[:-1]
        r = float(s) * mult
    if not r >= 0 or math.isinf(r):
        raise ValueError("bad rate %r" % (v,))
    return r


def parse_prob(v):
    if isinstance(v, bool):
        raise ValueError("bad fraction %r" % (v,))
    p = float(v)
    if not 0.0 <= p <= 1.0:
        raise ValueError("fraction %r not in 0..1" % (v,))
    return p


def parse_nonneg(v):
    if isinstance(v, bool):
        raise ValueError("bad number %r" % (v,))
    x = float(v)
    if not x >= 0 or math.isinf(x):
        raise ValueError("bad number %r" % (v,))
    return x


def parse_stall_s(v):
    if isinstance(v, bool):
        raise ValueError("bad stall_s %r" % (v,))
    x = float(v)          # accepts "inf"
    if not x >= 0:
        raise ValueError("bad stall_s %r" % (v,))
    return x


def parse_status(v):
    s = int(v)
    if s not in (500, 503):
        raise ValueError("error_status must be 500 or 503, not %r" % (v,))
    return s


def parse_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return v.lower() in ("true", "1", "yes", "on")
    raise ValueError("bad boolean %r" % (v,))


CONV = {
    "delay_ms": parse_nonneg, "jitter_ms": parse_nonneg, "rate": parse_rate,
    "total_rate": parse_rate, "reset": parse_prob, "drop": parse_prob, "error": parse_prob,
    "error_status": parse_status, "stall": parse_prob, "stall_s": parse_stall_s,
    "blackhole": parse_bool,
}


def merge_settings(base, over):
    if not isinstance(over, dict):
        raise ValueError("control file must hold a JSON object")
    out = dict(base)
    for k, v in over.items():
        if k not in CONV:
            raise ValueError("unknown key %r" % (k,))
        out[k] = CONV[k](v)
    return out


def hostport(s, what):
    host, sep, port = s.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("%s must be HOST:PORT, not %r" % (what, s))
    try:
        p = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("bad port in %r" % (s,))
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError("bad port in %r" % (s,))
    return host.strip("[]"), p


def parse_head(head):
    """head: bytes ending in CRLFCRLF -> (start line str, {lower name bytes: value bytes})"""
    lines = head[:-4].split(b"\r\n")
    first = lines[0].decode("latin-1")
    hdrs = {}
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        if not sep or not k or k[-1:] in (b" ", b"\t"):
            raise BadMessage("bad header line %r" % line[:80])
        k = k.lower()
        v = v.strip()
        if k in hdrs:
            hdrs[k] = hdrs[k] + b", " + v
        else:
            hdrs[k] = v
    return first, hdrs


def body_framing(hdrs):
    """-> ('chunked', None) | ('length', N) | (None, None) when neither header is present"""
    te = hdrs.get(b"transfer-encoding")
    if te is not None:
        codings = [c.strip().lower() for c in te.split(b",")]
        if codings[-1] != b"chunked":
            raise BadMessage("transfer-encoding without chunked")
        return "chunked", None
    cl = hdrs.get(b"content-length")
    if cl is not None:
        vals = {c.strip() for c in cl.split(b",")}
        if len(vals) != 1:
            raise BadMessage("conflicting content-length")
        v = vals.pop()
        if not v.isdigit():
            raise BadMessage("bad content-length")
        return "length", int(v)
    return None, None


def conn_tokens(hdrs):
    v = hdrs.get(b"connection")
    if not v:
        return set()
    return {t.strip().lower() for t in v.split(b",")}


async def read_head(reader):
    """next message head (bytes ending in CRLFCRLF, leading empty lines dropped), or None
    on EOF before any byte of it"""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial.strip():
                return None
            raise BadMessage("connection closed inside a message head")
        except asyncio.LimitOverrunError:
            raise BadMessage("message head too large")
        if len(head) > HEAD_MAX:
            raise BadMessage("message head too large")
        if head[:2] == b"\r\n":
            head = head.lstrip(b"\r\n")
            if not head.endswith(b"\r\n\r\n"):
                # it was only empty lines (plus a part of the terminator): read on
                if head:
                    rest = await reader.readuntil(b"\r\n\r\n")
                    head = head + rest
                else:
                    continue
        return head


def set_rst(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class Pacer:
    """token pacing: reserve(n, rate, at) -> time at which n bytes may go"""
    __slots__ = ("t",)

    def __init__(self):
        self.t = 0.0

    def reserve(self, n, rate, at):
        start = self.t if self.t > at else at
        self.t = start + n / rate
        return start


class Proxy:
    def __init__(self, args):
        self.args = args
        self.listen = args.listen
        self.target = args.target
        self.base = {
            "delay_ms": args.delay_ms, "jitter_ms": args.jitter_ms, "rate": args.rate,
            "total_rate": args.total_rate, "reset": args.reset, "drop": args.drop,
            "error": args.error, "error_status": args.error_status, "stall": args.stall,
            "stall_s": args.stall_s, "blackhole": args.blackhole,
        }
        self.cur = dict(self.base)
        self.ctl_sig = None
        self.seed = args.seed
        self.sysrand = random.Random()
        self.nconn = 0
        self.total_pacer = Pacer()
        self.tasks = set()
        self.writers = set()
        self.logf = None
        self.stopping = False
        self.stats = {
            "connections": 0, "requests": 0, "responses": 0, "by_status": {},
            "faults": {"delay": 0, "drop": 0, "blackhole_connections": 0,
                       "blackhole_requests": 0, "reset_before": 0, "reset_mid": 0,
                       "error": 0, "stall": 0},
            "upstream_connect_errors": 0, "upstream_closed_mid_response": 0,
            "bad_requests": 0, "control_reloads": 0, "control_errors": 0,
            "bytes_up": 0, "bytes_down": 0, "body_bytes_down": 0,
            "delayed_peak": 0,  # most requests waiting out their delay at one time
        }
        self.delaying = 0

    # -- messages, control file ---------------------------------------------------------
    def note(self, msg):
        if not self.args.quiet:
            try:
                sys.stderr.write("[faultproxy %s] %s\n" % ("%s:%d" % self.listen, msg))
                sys.stderr.flush()
            except (OSError, ValueError):
                pass       # stderr closed by whoever started us: go on silently

    def poll_control(self):
        path = self.args.control
        try:
            st = os.stat(path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            sig = None
        if sig == self.ctl_sig:
            return
        self.ctl_sig = sig
        if sig is None:
            self.cur = dict(self.base)
            self.stats["control_reloads"] += 1
            self.note("control file %s gone: command-line settings" % path)
            return
        try:
            with open(path, "rb") as f:
                data = f.read()
            over = json.loads(data.decode("utf-8")) if data.strip() else {}
            new = merge_settings(self.base, over)
        except (OSError, ValueError, TypeError) as e:
            self.stats["control_errors"] += 1
            self.note("control file %s ignored: %s" % (path, e))
            return
        self.cur = new
        self.stats["control_reloads"] += 1
        self.note("control: %s" % json.dumps(over, sort_keys=True))

    async def control_loop(self):
        while True:
            try:
                self.poll_control()
            except Exception as e:      # never let the poller die
                self.note("control poll: %r" % (e,))
            await asyncio.sleep(0.1)

    def log(self, conn, method, path, status, nbytes, fault, t0):
        if self.logf is None:
            return
        now = time.time()
        ms = (time.monotonic() - t0) * 1000.0
        if len(path) > 300:
            path = path[:300] + "..."
        self.logf.write("%s.%03dZ %s %s %s %d %s %.1f conn=%d\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)), int(now * 1000) % 1000,
            method, path, status, nbytes, fault, ms, conn))

    def rng_for(self, k):
        if self.seed is None:
            return random.Random(self.sysrand.getrandbits(64))
        return random.Random("%d/%d" % (self.seed, k))

    # -- connections --------------------------------------------------------------------
    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        self.writers.add(writer)
        self.nconn += 1
        k = self.nconn
        self.stats["connections"] += 1
        try:
            writer.transport.set_write_buffer_limits(high=WBUF_HIGH)
            s = self.cur
            rng = self.rng_for(k)
            u_drop = rng.random()
            if s["blackhole"]:
                self.stats["faults"]["blackhole_connections"] += 1
                await self.swallow(reader)
                return
            if u_drop < s["drop"]:
                self.stats["faults"]["drop"] += 1
                self.log(k, "-", "-", "-", 0, "drop", time.monotonic())
                return
            await Conn(self, k, rng, reader, writer).run()
        except asyncio.CancelledError:
            pass
        except Exception as e:   # a bug must not kill the proxy, only this connection
            self.note("conn %d: %r" % (k, e))
        finally:
            self.writers.discard(writer)
            self.tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def swallow(self, reader):
        while True:
            data = await reader.read(BUF)
            if not data:
                return

    # -- main ---------------------------------------------------------------------------
    async def main(self):
        loop = asyncio.get_running_loop()
        host, port = self.listen
        server = await asyncio.start_server(self.handle, host, port, limit=LIMIT,
                                            reuse_address=True, backlog=1024)
        sock = server.sockets[0]
        self.listen = sock.getsockname()[:2]
        stop = asyncio.Event()
        reason = []

        def on_stop(why):
            if not reason:
                reason.append(why)
            stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, on_stop, signal.Signals(sig).name)
        loop.call_later(self.args.lifetime, on_stop, "lifetime")
        ctl_task = None
        if self.args.control:
            self.poll_control()
            ctl_task = asyncio.ensure_future(self.control_loop())
        if self.args.log:
            self.logf = open(self.args.log, "a", buffering=1)
        if self.args.pidfile:
            tmp = "%s.%d.tmp" % (self.args.pidfile, os.getpid())
            with open(tmp, "w") as f:
                f.write("%d\n" % os.getpid())
            os.replace(tmp, self.args.pidfile)
        try:
            sys.stdout.write("READY listen=%s:%d target=%s:%d pid=%d\n" % (
                self.listen[0], self.listen[1], self.target[0], self.target[1], os.getpid()))
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        self.note("READY (lifetime %g s)" % self.args.lifetime)
        t_start = time.monotonic()
        await stop.wait()
        self.stopping = True
        server.close()
        if ctl_task:
            ctl_task.cancel()
        for w in list(self.writers):
            try:
                w.transport.abort()
            except Exception:
                pass
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        try:
            await asyncio.wait_for(server.wait_closed(), 1)
        except Exception:
            pass
        self.stats["exit_reason"] = reason[0] if reason else "?"
        self.stats["uptime_s"] = round(time.monotonic() - t_start, 3)
        self.stats["settings"] = {k: (v if not (isinstance(v, float) and math.isinf(v))
                                      else "inf") for k, v in self.cur.items()}
        if self.args.stats:
            tmp = "%s.%d.tmp" % (self.args.stats, os.getpid())
            with open(tmp, "w") as f:
                json.dump(self.stats, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.args.stats)
        if self.logf:
            self.logf.close()
        if self.args.pidfile:
            try:
                with open(self.args.pidfile) as f:
                    mine = f.read().strip() == str(os.getpid())
                if mine:
                    os.unlink(self.args.pidfile)
            except OSError:
                pass
        self.note("exit (%s): %d connections, %d requests" % (
            self.stats["exit_reason"], self.stats["connections"], self.stats["requests"]))


class Conn:
    """one client connection and its upstream connection"""

    def __init__(self, proxy, k, rng, reader, writer):
        self.p = proxy
        self.st = proxy.stats
        self.k = k
        self.rng = rng
        self.cr = reader
        self.cw = writer
        self.ur = None
        self.uw = None
        self.pacer = Pacer()
        # per response
        self.pending = b""
        self.body_sent = 0
        self.fault_at = None
        self.fault_kind = None
        self.rate = 0.0
        self.total_rate = 0.0
        self.stall_s = 0.0
        self.resp_status = "-"

    async def run(self):
        try:
            while True:
                if not await self.one():
                    break
        finally:
            if self.uw is not None:
                try:
                    self.uw.close()
                except Exception:
                    pass

    def client_gone(self):
        r = self.cr
        return getattr(r, "_eof", r.at_eof()) or r.exception() is not None or \
            self.cw.is_closing()

    # -- helpers ------------------------------------------------------------------------
    async def send_simple(self, status, method, path, keep):
        reason, code, msg = ERR_CODES[status]
        rid = "faultproxy-%d-%d" % (os.getpid(), self.st["requests"])
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                '<Message>%s</Message><Resource>%s</Resource><RequestId>%s</RequestId>'
                '</Error>\n' % (code, msg, xml_escape(path), rid)).encode()
        hdr = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
               "x-amz-request-id: %s\r\nDate: %s\r\n%s\r\n" % (
                   status, reason, 0 if method == "HEAD" else len(body), rid,
                   time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                   "" if keep else "Connection: close\r\n")).encode()
        data = hdr if method == "HEAD" else hdr + body
        self.cw.write(data)
        await self.cw.drain()
        self.st["bytes_down"] += len(data)
        return len(data) - len(hdr)

    async def discard_body(self, kind, n):
        if kind == "length":
            while n > 0:
                data = await self.cr.read(min(BUF, n))
                if not data:
                    raise ClientGone()
                n -= len(data)
        elif kind == "chunked":
            await self.relay_chunked(self.cr, None)

    async def relay_chunked(self, src, dst):
        """copy a chunked body verbatim from src to dst (dst None: discard).  For
        responses (dst is the client) data goes through self.put() (pacing, faults)."""
        while True:
            if dst is self.cw:
                await self.check_fault()
            line = await self.readline(src)
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise BadMessage("bad chunk size line %r" % line[:40])
            await self.put(dst, line, data=False)
            if size == 0:
                while True:
                    t = await self.readline(src)
                    await self.put(dst, t, data=False)
                    if t == b"\r\n":
                        return
            await self.copy_n(src, dst, size, data=True)
            crlf = await self.readexactly(src, 2)
            if crlf != b"\r\n":
                raise BadMessage("chunk not followed by CRLF")
            await self.put(dst, crlf, data=False)

    async def readline(self, src):
        try:
            line = await src.readuntil(b"\r\n")
        except asyncio.IncompleteReadError:
            raise (UpstreamGone() if src is self.ur else ClientGone())
        except asyncio.LimitOverrunError:
            raise BadMessage("line too long")
        return line

    async def readexactly(self, src, n):
        try:
            return await src.readexactly(n)
        except asyncio.IncompleteReadError:
            raise (UpstreamGone() if src is self.ur else ClientGone())

    async def copy_n(self, src, dst, n, data=True):
        """copy exactly n bytes src -> dst (dst None: discard)"""
        to_client = dst is self.cw
        while n > 0:
            want = BUF if n > BUF else n
            if to_client:
                await self.check_fault()
                if self.fault_at is not None and self.fault_at > self.body_sent:
                    want = min(want, self.fault_at - self.body_sent)
                if self.rate or self.total_rate:
                    want = min(want, self.pace_chunk())
            chunk = await src.read(want)
            if not chunk:
                raise (UpstreamGone() if src is self.ur else ClientGone())
            n -= len(chunk)
            await self.put(dst, chunk, data=data)

    async def copy_eof(self, src, dst):
        while True:
            await self.check_fault()
            want = BUF
            if self.rate or self.total_rate:
                want = min(want, self.pace_chunk())
            chunk = await src.read(want)
            if not chunk:
                return
            await self.put(dst, chunk, data=True)

    def pace_chunk(self):
        r = min(x for x in (self.rate, self.total_rate) if x)
        return max(1024, min(BUF, int(r / 50)))

    async def put(self, dst, chunk, data=True):
        if dst is None:
            return
        if dst is self.cw:
            n = len(chunk)
            if self.rate or self.total_rate:
                loop_now = time.monotonic()
                at = loop_now
                if self.rate:
                    at = self.pacer.reserve(n, self.rate, at)
                if self.total_rate:
                    at = self.p.total_pacer.reserve(n, self.total_rate, at)
                    if self.rate and self.pacer.t < at + n / self.rate:
                        self.pacer.t = at + n / self.rate
                if at > loop_now + 0.0005:
                    if self.pending:
                        self.flush_pending()
                    await asyncio.sleep(at - loop_now)
            if self.pending:
                chunk = self.pending + chunk
                self.pending = b""
            self.cw.write(chunk)
            self.st["bytes_down"] += len(chunk)
            if data:
                self.body_sent += n
                self.st["body_bytes_down"] += n
            await self.cw.drain()
        else:
            dst.write(chunk)
            self.st["bytes_up"] += len(chunk)
            await dst.drain()

    def flush_pending(self):
        if self.pending:
            self.cw.write(self.pending)
            self.st["bytes_down"] += len(self.pending)
            self.pending = b""

    async def check_fault(self):
        if self.fault_kind is None or self.body_sent < self.fault_at:
            return
        kind = self.fault_kind
        self.fault_kind = None
        self.fault_at = None
        await self.do_fault(kind)

    async def do_fault(self, kind):
        self.flush_pending()
        if kind == "reset":
            try:
                await self.cw.drain()
            except Exception:
                pass
            await asyncio.sleep(0.02)      # let the client read what was sent
            set_rst(self.cw)
            raise ClientGone()
        # stall
        try:
            await self.cw.drain()
        except Exception:
            raise ClientGone()
        end = time.monotonic() + self.stall_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.client_gone():
                raise ClientGone()
            await asyncio.sleep(min(left, 0.1))

    async def connect_upstream(self):
        host, port = self.p.target
        try:
            self.ur, self.uw = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=LIMIT), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:
            self.ur = self.uw = None
            self.st["upstream_connect_errors"] += 1
            self.p.note("conn %d: upstream %s:%d: %s" % (self.k, host, port,
                                                         e or "connect timeout"))
            return False
        self.uw.transport.set_write_buffer_limits(high=WBUF_HIGH)
        return True

    def close_upstream(self, graceful=False):
        if self.uw is not None:
            try:
                if graceful:
                    self.uw.close()
                else:
                    self.uw.transport.abort()
            except Exception:
                pass
        self.ur = self.uw = None

    # -- one request --------------------------------------------------------------------
    async def one(self):
        """relay one request/response; -> True to go on with the connection"""
        p, st = self.p, self.st
        try:
            head = await read_head(self.cr)
        except BadMessage:
            st["bad_requests"] += 1
            await self.send_simple(400, "GET", "-", False)
            return False
        except (ConnectionError, OSError):
            return False
        if head is None:
            return False
        t0 = time.monotonic()
        s = p.cur
        st["requests"] += 1
        rng = self.rng
        u_reset, u_kind, u_error, u_stall, u_jit = (rng.random(), rng.random(), rng.random(),
                                                     rng.random(), rng.random())
        method, path, fault = "?", "?", "-"
        try:
            first, hdrs = parse_head(head)
            parts = first.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                raise BadMessage("bad request line %r" % first[:80])
            method, path, version = parts
            kind, n = body_framing(hdrs)
        except BadMessage as e:
            st["bad_requests"] += 1
            p.note("conn %d: %s" % (self.k, e))
            await self.send_simple(400, method if method != "?" else "GET", path, False)
            p.log(self.k, method, path, 400, 0, "-", t0)
            return False
        toks = conn_tokens(hdrs)
        client_keep = (b"close" not in toks) if version == "HTTP/1.1" else (b"keep-alive" in toks)
        has_body = kind == "chunked" or (kind == "length" and n > 0)
        expect = hdrs.get(b"expect", b"").lower() == b"100-continue"

        if s["blackhole"]:
            st["faults"]["blackhole_requests"] += 1
            p.log(self.k, method, path, "-", 0, "blackhole", t0)
            await p.swallow(self.cr)
            return False

        delay = s["delay_ms"] + u_jit * s["jitter_ms"]
        if delay > 0:
            st["faults"]["delay"] += 1
            p.delaying += 1
            st["delayed_peak"] = max(st["delayed_peak"], p.delaying)
            try:
                await asyncio.sleep(delay / 1000.0)
            finally:
                p.delaying -= 1

        mid_reset = stall = False
        if u_reset < s["reset"]:
            if u_kind < 0.5:
                st["faults"]["reset_before"] += 1
                p.log(self.k, method, path, "-", 0, "reset_before", t0)
                set_rst(self.cw)
                return False
            mid_reset = True
            fault = "reset_mid"
        elif u_error < s["error"]:
            st["faults"]["error"] += 1
            code = s["error_status"]
            keep = client_keep
            if has_body:
                if expect:
                    keep = False
                else:
                    await self.discard_body(kind, n)
            nb = await self.send_simple(code, method, path, keep)
            self.count_status(code)
            p.log(self.k, method, path, code, nb, "error", t0)
            return keep
        elif u_stall < s["stall"]:
            stall = True
            fault = "stall"

        # -- forward
        if self.uw is None or self.uw.is_closing() or self.ur.at_eof():
            self.close_upstream()
            if not await self.connect_upstream():
                keep = client_keep and not (has_body and expect)
                if has_body and keep:
                    await self.discard_body(kind, n)
                nb = await self.send_simple(502, method, path, keep)
                self.count_status(502)
                p.log(self.k, method, path, 502, nb, "upstream_down", t0)
                return keep
        self.uw.write(head)
        st["bytes_up"] += len(head)
        body_task = None
        if has_body:
            if kind == "length":
                body_task = asyncio.ensure_future(self.copy_n(self.cr, self.uw, n, data=False))
            else:
                body_task = asyncio.ensure_future(self.relay_chunked(self.cr, self.uw))
            body_task.add_done_callback(self.body_done)
        self.resp_status = "-"
        # per-response state
        self.pending = b""
        self.body_sent = 0
        self.fault_kind = "reset" if mid_reset else ("stall" if stall else None)
        self.fault_at = None
        self.rate = s["rate"]
        self.total_rate = s["total_rate"]
        self.stall_s = s["stall_s"]
        if stall:
            st["faults"]["stall"] += 1
        if mid_reset:
            st["faults"]["reset_mid"] += 1
        keep = clean = False
        try:
            keep, _ = await self.relay_response(method, client_keep)
            clean = True
        except ClientGone:
            fault = fault if fault != "-" else "client_gone"
            keep = False
        except UpstreamGone:
            if body_task is not None and body_task.done() and not body_task.cancelled() \
                    and isinstance(body_task.exception(), ClientGone):
                fault = fault if fault != "-" else "client_gone"   # we aborted upstream
            else:
                st["upstream_closed_mid_response"] += 1
                fault = fault if fault != "-" else "upstream_closed"
            keep = False
        except BadMessage as e:
            p.note("conn %d: upstream: %s" % (self.k, e))
            fault = fault if fault != "-" else "bad_upstream"
            keep = False
        except (ConnectionError, OSError):
            fault = fault if fault != "-" else "io_error"
            keep = False
        finally:
            if body_task is not None:
                if not body_task.done():
                    body_task.cancel()
                    keep = clean = False
                    try:
                        await body_task
                    except BaseException:
                        pass
                elif body_task.cancelled() or body_task.exception() is not None:
                    keep = clean = False
            p.log(self.k, method, path, self.resp_status, self.body_sent, fault, t0)
        if not keep:
            # a complete exchange: FIN; anything else: RST (upstream state unknown)
            self.close_upstream(graceful=clean)
        return keep

    def body_done(self, task):
        """the request body could not be forwarded (client gone, upstream gone, bad
        chunking): abort the upstream connection, so that waiting for its response ends"""
        if not task.cancelled() and task.exception() is not None:
            uw = self.uw
            if uw is not None:
                try:
                    uw.transport.abort()
                except Exception:
                    pass

    def count_status(self, code):
        self.st["responses"] += 1
        bs = self.st["by_status"]
        key = str(code)
        bs[key] = bs.get(key, 0) + 1

    async def relay_response(self, method, client_keep):
        """-> (keep connection, final status)"""
        while True:
            rhead = await read_head(self.ur)
            if rhead is None:
                raise UpstreamGone()
            first, hdrs = parse_head(rhead)
            parts = first.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise BadMessage("bad status line %r" % first[:80])
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                self.cw.write(rhead)
                self.st["bytes_down"] += len(rhead)
                await self.cw.drain()
                continue
            break
        self.count_status(status)
        self.resp_status = status
        version = parts[0]
        toks = conn_tokens(hdrs)
        up_keep = (b"close" not in toks) if version == "HTTP/1.1" else (b"keep-alive" in toks)
        if status == 101:
            self.cw.write(rhead)
            await self.cw.drain()
            await self.tunnel()
            return False, status
        if method == "HEAD" or status in (204, 304):
            kind, n = "length", 0
        else:
            kind, n = body_framing(hdrs)
            if kind is None:
                kind = "eof"
        if kind == "length" and n == 0:
            # no body: a stall/mid reset happens before the head
            await self.check_fault_now()
            self.pending = rhead
            self.flush_pending()
            await self.cw.drain()
        else:
            if kind == "length":
                if self.fault_kind:
                    self.fault_at = n // 2
            elif self.fault_kind:
                self.fault_at = 1
            self.pending = rhead
            if kind == "length":
                await self.copy_n(self.ur, self.cw, n, data=True)
            elif kind == "chunked":
                await self.relay_chunked(self.ur, self.cw)
            else:
                await self.copy_eof(self.ur, self.cw)
                up_keep = False
            self.flush_pending()
            await self.cw.drain()
        return (client_keep and up_keep), status

    async def check_fault_now(self):
        if self.fault_kind is not None:
            kind = self.fault_kind
            self.fault_kind = None
            await self.do_fault(kind)

    async def tunnel(self):
        async def pipe(src, dst):
            try:
                while True:
                    d = await src.read(BUF)
                    if not d:
                        break
                    dst.write(d)
                    await dst.drain()
            finally:
                try:
                    dst.write_eof()
                except Exception:
                    pass
        await asyncio.gather(pipe(self.cr, self.uw), pipe(self.ur, self.cw),
                             return_exceptions=True)


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(__doc__)
        return 0
    ap = argparse.ArgumentParser(
        prog="faultproxy.py", add_help=False,
        usage="faultproxy.py --listen A:P --target H:P [options]  (--help for all)")
    ap.add_argument("--listen", required=True, type=lambda s: hostport(s, "--listen"))
    ap.add_argument("--target", required=True, type=lambda s: hostport(s, "--target"))
    ap.add_argument("--delay-ms", type=parse_nonneg, default=0.0)
    ap.add_argument("--jitter-ms", type=parse_nonneg, default=0.0)
    ap.add_argument("--rate", type=parse_rate, default=0.0)
    ap.add_argument("--total-rate", type=parse_rate, default=0.0)
    ap.add_argument("--reset", type=parse_prob, default=0.0)
    ap.add_argument("--drop", type=parse_prob, default=0.0)
    ap.add_argument("--error", type=parse_prob, default=0.0)
    ap.add_argument("--error-status", type=parse_status, default=503)
    ap.add_argument("--stall", type=parse_prob, default=0.0)
    ap.add_argument("--stall-s", type=parse_stall_s, default=10.0)
    ap.add_argument("--blackhole", action="store_true")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--control")
    ap.add_argument("--lifetime", type=float, default=900.0)
    ap.add_argument("--pidfile")
    ap.add_argument("--log")
    ap.add_argument("--stats")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    host = args.listen[0]
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(x.isdigit() and int(x) < 256 for x in parts):
        ap.error("--listen address %r is not a 127.x.y.z loopback address" % host)
    if not 0 < args.lifetime < 10 ** 7:
        ap.error("--lifetime must be > 0")
    # hard backstop: the default SIGALRM action ends the process even if the loop hangs
    signal.alarm(int(math.ceil(args.lifetime)) + 10)
    proxy = Proxy(args)
    try:
        asyncio.run(proxy.main())
    except OSError as e:
        sys.stderr.write("faultproxy: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
