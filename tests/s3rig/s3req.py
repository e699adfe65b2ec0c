#!/usr/bin/python3
"""s3req.py - one SigV4-signed S3 request, Python standard library only.

  s3req.py METHOD /bucket/key [--query k=v ...] [-H 'Name: value' ...]
           [--data FILE | --data @-] [--out FILE] [--quiet-body]
           [--endpoint URL] [--host HOST] [--access A] [--secret S] [--region R]
           [--unsigned-payload] [--bad-payload-hash] [--no-auth] [--timeout S]

Endpoint, keys and region default to AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION (then 127.0.0.1:8080,
test:tester, testing, us-east-1).  The status line and headers go to stderr, the body
to stdout (or --out FILE).  Exit status 0 for HTTP < 400, 1 otherwise, 2 on a
connection error.  Meant for the cases a regular client will not produce (a wrong
secret, a bad payload hash, a forged Host header) and for quick calls from tests.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse


def env(*names, default):
    for n in names:
        if os.environ.get(n):
            return os.environ[n]
    return default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('method')
    ap.add_argument('path', help='/bucket/key (not URL-encoded)')
    ap.add_argument('--query', action='append', default=[], metavar='K=V')
    ap.add_argument('-H', dest='headers', action='append', default=[], metavar='HDR')
    ap.add_argument('--data', help='request body from FILE, @- for stdin')
    ap.add_argument('--endpoint', default=env('AWS_ENDPOINT_URL', default='http://127.0.0.1:8080'))
    ap.add_argument('--host', help='Host header to send and sign (virtual-hosted style)')
    ap.add_argument('--access', default=env('AWS_ACCESS_KEY_ID', default='test:tester'))
    ap.add_argument('--secret', default=env('AWS_SECRET_ACCESS_KEY', default='testing'))
    ap.add_argument('--region', default=env('AWS_REGION', 'AWS_DEFAULT_REGION', default='us-east-1'))
    ap.add_argument('--unsigned-payload', action='store_true')
    ap.add_argument('--bad-payload-hash', action='store_true')
    ap.add_argument('--no-auth', action='store_true')
    ap.add_argument('--out')
    ap.add_argument('--quiet-body', action='store_true')
    ap.add_argument('--timeout', type=float, default=60)
    a = ap.parse_args()

    ep = a.endpoint if '://' in a.endpoint else 'http://' + a.endpoint
    netloc = urllib.parse.urlsplit(ep).netloc
    body = b''
    if a.data:
        body = sys.stdin.buffer.read() if a.data == '@-' else open(a.data, 'rb').read()

    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime('%Y%m%dT%H%M%SZ')
    day = amz_date[:8]
    hdrs = {}
    for h in a.headers:
        k, _, v = h.partition(':')
        hdrs[k.strip().lower()] = v.strip()
    hdrs['host'] = a.host or netloc
    if a.unsigned_payload:
        payload_hash = 'UNSIGNED-PAYLOAD'
    else:
        payload_hash = hashlib.sha256(body + (b'x' if a.bad_payload_hash else b'')).hexdigest()

    def enc(s, safe):
        return urllib.parse.quote(s, safe=safe)

    pairs = sorted((enc(k, '-_.~'), enc(v, '-_.~'))
                   for k, _, v in (q.partition('=') for q in a.query))
    query = '&'.join('%s=%s' % kv for kv in pairs)
    path = enc(a.path, '/-_.~')

    if not a.no_auth:
        hdrs['x-amz-content-sha256'] = payload_hash
        hdrs['x-amz-date'] = amz_date
        names = sorted(hdrs)
        canonical = '\n'.join(
            [a.method, path, query]
            + ['%s:%s' % (n, ' '.join(hdrs[n].split())) for n in names]
            + ['', ';'.join(names), payload_hash])
        scope = '%s/%s/s3/aws4_request' % (day, a.region)
        to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ('AWS4' + a.secret).encode()
        for part in (day, a.region, 's3', 'aws4_request'):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs['authorization'] = (
            'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s'
            % (a.access, scope, ';'.join(names), sig))

    try:
        conn = http.client.HTTPConnection(netloc, timeout=a.timeout)
        conn.putrequest(a.method, path + ('?' + query if query else ''),
                        skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if body or a.method in ('PUT', 'POST'):
            conn.putheader('content-length', str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
    except OSError as e:
        sys.stderr.write('s3req: %s: %s\n' % (netloc, e))
        return 2
    sys.stderr.write('HTTP %d %s\n' % (resp.status, resp.reason))
    for k, v in resp.getheaders():
        sys.stderr.write('%s: %s\n' % (k, v))
    if a.out:
        with open(a.out, 'wb') as f:
            f.write(data)
    elif not a.quiet_body:
        sys.stdout.buffer.write(data)
        if data and not data.endswith(b'\n'):
            sys.stdout.write('\n')
    return 0 if resp.status < 400 else 1


if __name__ == '__main__':
    sys.exit(main())
