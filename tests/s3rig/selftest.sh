#!/usr/bin/env bash
# selftest.sh - check the S3 test rig itself: packages, Swift through s3env.sh with a
# second proxy endpoint, nginx, and the S3 behaviours the shim's tests rely on.
# Prints "ok - ..." / "not ok - ..." lines and a closing "N passed, M failed" line; exit
# status 0 only when nothing failed.  Stops everything it started.  About 30-60 s.
# Ignores an AWS_ENDPOINT_URL from the environment: it always tests its own Swift.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=selftest
. "$HERE/lib.sh"
. "$HERE/../report.sh"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ------------------------------------------------------------------ packages
t=$(now)
if "$HERE/install.sh" all; then
    pass "packages installed ($(since "$t") s)"
else
    fail "install.sh all"
    finish
fi
INSTALL_SECS=$(since "$t")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3rig-selftest.XXXXXX")
NGINX_DIR=$WORK/nginx
selftest_cleanup() {
    "$HERE/stop-nginx.sh" --dir "$NGINX_DIR" --purge 2>/dev/null
    rm -rf "$WORK"
}
trap selftest_cleanup EXIT

# ------------------------------------------------------------------ Swift via s3env.sh
unset AWS_ENDPOINT_URL S3RIG_SWIFT_DIR S3_BUCKET S3RIG_NETRC S3RIG_ENDPOINTS
P2=$(s3rig_free_port 127.0.0.2 8080) || P2=18080
export S3RIG_SWIFT_PROXIES="127.0.0.2:$P2"
t=$(now)
if . "$HERE/s3env.sh"; then
    SWIFT_SECS=$(since "$t")
    pass "s3env.sh started Swift in $SWIFT_SECS s: $S3RIG_ENDPOINTS, bucket $S3_BUCKET"
else
    fail "s3env.sh could not start Swift"
    finish
fi
SWIFT_PIDS=$(cat "$S3RIG_SWIFT_DIR/run/pids")

out=$("$HERE/start-swift.sh" --dir "$S3RIG_SWIFT_DIR" --port auto --storage-ports auto 2>&1)
case "$out" in
    *"reused=1"*) pass "start-swift.sh again: running instance reused" ;;
    *) fail "start-swift.sh again did not reuse the instance: $out" ;;
esac
unset S3RIG_SWIFT_PROXIES
grep -q '^AWS_ACCESS_KEY_ID=test:tester$' "$S3RIG_SWIFT_DIR/run/env" &&
grep -q '^AWS_SECRET_ACCESS_KEY=testing$' "$S3RIG_SWIFT_DIR/run/env" &&
grep -q '^AWS_REGION=us-east-1$' "$S3RIG_SWIFT_DIR/run/env" &&
grep -q "^AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL\$" "$S3RIG_SWIFT_DIR/run/env" &&
    pass "env file has the keys, region and endpoint" || fail "env file content"

# ------------------------------------------------------------------ aws s3 cp up and down
cat > "$WORK/aws.conf" <<'EOF'
[default]
s3 =
  multipart_threshold = 5MB
  multipart_chunksize = 5MB
EOF
export S3RIG_AWS_CONFIG=$WORK/aws.conf
: > "$WORK/f0"
head -c 1 /dev/urandom > "$WORK/f1"
head -c $((6 * 1024 * 1024)) /dev/urandom > "$WORK/f6m"
for f in f0 f1 f6m; do
    size=$(stat -c %s "$WORK/$f")
    if s3_put "$WORK/$f" "cp/$f" && s3_get "cp/$f" "$WORK/$f.back" && cmp -s "$WORK/$f" "$WORK/$f.back"; then
        pass "aws s3 cp up and down, $size B"
    else
        fail "aws s3 cp up and down, $size B"
    fi
done
etag=$(s3_aws s3api head-object --bucket "$S3_BUCKET" --key cp/f6m --query ETag --output text 2>&1)
want=$(/usr/bin/python3 - "$WORK/f6m" <<'EOF'
import hashlib, sys
data = open(sys.argv[1], 'rb').read()
step = 5 * 1024 * 1024
parts = [data[i:i + step] for i in range(0, len(data), step)]
print('"%s-%d"' % (hashlib.md5(b''.join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts)))
EOF
)
[[ $etag == *-2\" ]] && [ "$etag" = "$want" ] &&
    pass "6 MiB went multipart: ETag $etag (md5 of part md5s, -2)" ||
    fail "multipart ETag $etag, expected $want"

# ------------------------------------------------------------------ conditional GET
code=$(s3_curl -o /dev/null -w '%{http_code}' -H 'If-Match: "0123456789abcdef0123456789abcdef"' "$(s3_url cp/f1)")
[ "$code" = 412 ] && pass "If-Match with another ETag -> 412" || fail "If-Match mismatch gave $code"
e1=$(s3_curl -o /dev/null -w '%header{etag}' "$(s3_url cp/f1)" 2>/dev/null)
code=$(s3_curl -o /dev/null -w '%{http_code}' -H "If-Match: $e1" "$(s3_url cp/f1)")
[ "$code" = 200 ] && pass "If-Match with its own ETag $e1 -> 200" || fail "If-Match own ETag gave $code"

# ------------------------------------------------------------------ wrong secret
out=$(s3req GET "/$S3_BUCKET/cp/f1" --secret not-the-secret 2>&1)
[[ $out == "HTTP 403"* ]] && [[ $out == *"<Code>SignatureDoesNotMatch</Code>"* ]] &&
    pass "wrong secret -> 403 SignatureDoesNotMatch" || fail "wrong secret: ${out:0:200}"

# ------------------------------------------------------------------ second endpoint, same cluster
code=$(s3_curl -o "$WORK/via2" -w '%{http_code}' "http://127.0.0.2:$P2/$S3_BUCKET/cp/f1")
[ "$code" = 200 ] && cmp -s "$WORK/via2" "$WORK/f1" &&
    pass "second proxy 127.0.0.2:$P2 serves the object written through the first" ||
    fail "second proxy gave $code"

# ------------------------------------------------------------------ ListObjectsV2 paging
N=1100
t=$(now)
echo x > "$WORK/x"
{
    for ((i = 0; i < N; i++)); do
        printf 'upload-file = "%s"\nurl = "%s/%s/many/k%04d"\noutput = "/dev/null"\n' \
            "$WORK/x" "$AWS_ENDPOINT_URL" "$S3_BUCKET" "$i"
    done
} > "$WORK/many.cfg"
s3_curl --parallel --parallel-max 16 --fail-early -f -K "$WORK/many.cfg" > /dev/null 2> "$WORK/many.err"
rc=$?
PUT_SECS=$(since "$t")
[ $rc = 0 ] && pass "$N small PUTs, 16 in parallel, in $PUT_SECS s" || fail "$N PUTs: curl rc=$rc $(head -c 300 "$WORK/many.err")"
p1=$(s3req GET "/$S3_BUCKET" --query list-type=2 --query prefix=many/ 2>/dev/null)
n1=$(grep -o '<Key>' <<< "$p1" | wc -l)
tok=$(sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p' <<< "$p1")
[ "$n1" = 1000 ] && [[ $p1 == *"<IsTruncated>true</IsTruncated>"* ]] && [ -n "$tok" ] &&
    pass "ListObjectsV2 page 1: 1000 keys, truncated, continuation token" ||
    fail "ListObjectsV2 page 1: $n1 keys, token '${tok:0:20}'"
p2=$(s3req GET "/$S3_BUCKET" --query list-type=2 --query prefix=many/ --query "continuation-token=$tok" 2>/dev/null)
n2=$(grep -o '<Key>' <<< "$p2" | wc -l)
first2=$(grep -o '<Key>[^<]*' <<< "$p2" | head -1 | cut -d'>' -f2)
[ "$n2" = 100 ] && [[ $p2 == *"<IsTruncated>false</IsTruncated>"* ]] && [ "$first2" = many/k1000 ] &&
    pass "ListObjectsV2 page 2: 100 keys from many/k1000, not truncated" ||
    fail "ListObjectsV2 page 2: $n2 keys, first '$first2'"
n=$(s3_ls many/ | wc -l)
[ "$n" = $N ] && pass "s3_ls (aws cli, all pages) lists $N keys" || fail "s3_ls lists $n keys"
s3_rm cp/f1 && [ -z "$(s3_ls cp/f1)" ] && pass "s3_rm removes a key" || fail "s3_rm"

# ------------------------------------------------------------------ nginx
mkdir -p "$WORK/www/d"
head -c 200000 /dev/urandom > "$WORK/www/d/blob"
N1=$(s3rig_free_port 127.0.0.1 8081) N2=$(s3rig_free_port 127.0.0.3 8081)
t=$(now)
if out=$("$HERE/start-nginx.sh" --dir "$NGINX_DIR" --root "$WORK/www" \
        --listen "127.0.0.1:$N1" --listen "127.0.0.3:$N2@100k"); then
    pass "nginx up in $(since "$t") s: $(sed 's/.* urls=\([^ ]*\).*/\1/' <<< "$out")"
else
    fail "start-nginx.sh"
fi
code=$(curl -s -m 10 -r 1000-1999 -o "$WORK/rng" -w '%{http_code}' "http://127.0.0.1:$N1/d/blob")
[ "$code" = 206 ] && cmp -s "$WORK/rng" <(tail -c +1001 "$WORK/www/d/blob" | head -c 1000) &&
    pass "nginx range GET bytes=1000-1999 -> 206 with the right bytes" || fail "nginx range GET gave $code"
code=$(curl -s -m 10 -r 200000-200100 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$N1/d/blob")
[ "$code" = 416 ] && pass "nginx range past the end -> 416" || fail "nginx range past end gave $code"
code=$(curl -s -m 10 -X PUT --data x -o /dev/null -w '%{http_code}' "http://127.0.0.1:$N1/d/blob")
[ "$code" = 403 ] || [ "$code" = 405 ] && pass "nginx is read-only (PUT -> $code)" || fail "nginx PUT gave $code"
secs=$(curl -s -m 20 -o /dev/null -w '%{time_total}' "http://127.0.0.3:$N2/d/blob")
awk -v s="$secs" 'BEGIN { exit !(s >= 0.9) }' &&
    pass "nginx limit_rate 100k on 127.0.0.3: 200 kB took $secs s" || fail "rate-limited GET took $secs s"
read -r _ npid nst < "$NGINX_DIR/run/pids"
"$HERE/stop-nginx.sh" --dir "$NGINX_DIR" 2>/dev/null
# (ports are not checked: on a shared machine somebody else may take them at once)
! s3rig_tracked_alive "$npid" "$nst" && pass "stop-nginx.sh stopped nginx" || fail "nginx $npid still running"

# ------------------------------------------------------------------ stop
s3rig_env_cleanup
alive=""
while read -r name pid st; do
    s3rig_tracked_alive "$pid" "$st" && alive+=" $name:$pid"
done <<< "$SWIFT_PIDS"
[ -z "$alive" ] && [ ! -e "$S3RIG_SWIFT_DIR" ] &&
    pass "s3rig_env_cleanup stopped every Swift process and removed its directory" ||
    fail "after cleanup, still running:${alive:- none}; dir $(ls -d "$S3RIG_SWIFT_DIR" 2>/dev/null)"

echo "# timings: install.sh ${INSTALL_SECS} s (packages present), Swift start ${SWIFT_SECS:-?} s, $N PUTs ${PUT_SECS:-?} s"
finish
