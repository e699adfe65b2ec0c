#!/usr/bin/env bash
# run.sh - the S3 benchmarks of issue 3 (`make bench-s3`): the shim against named peers,
# in one run, on one machine, printing for each benchmark the peer's figure, ours, the
# ratio and our memory high-water mark.  bench/README.md describes the method.
#
# What it starts (all on loopback, all stopped by PID at exit, see stop.sh):
#   - Swift with s3api (tests/s3rig/start-swift.sh, own directory, free ports): SigV4,
#     every benchmark;
#   - nginx (tests/s3rig/start-nginx.sh, free port): anonymous reads of the same bytes
#     from tmpfs, where Swift's own speed (one Python proxy) would hide the clients';
#   - s3fs and rclone mounts (FUSE), one fresh mount per measured run.
#
# Benchmarks:
#   read    1 GiB sequentially: shim `cat`, shim `dd bs=1M` (and one tuned shim row) vs
#           curl (1 stream), curl (8 parallel ranges), aws s3 cp to /dev/null, cat from
#           an s3fs mount, cat from an rclone mount.  nginx and Swift.
#   write   1 GiB: shim `dd if=/dev/zero bs=1M`, shim `cp` vs aws s3 cp upload and cp to
#           an s3fs mount.  Swift only.
#   pread   4 KiB and 64 KiB random preads on one fd through the shim vs curl fetching
#           the same ranges over one keep-alive connection.  nginx and Swift.
#   ttfb    1 KiB object: open+read through the shim vs one plain GET with curl.
#
# Environment:
#   BUILD (build)            where libs3shim.so is; s3io is built into $BUILD/bench
#   SIZE_MB (1024)           object size for read and write
#   NGINX_REPS (5)           runs of each nginx read row (the table shows best and median)
#   SWIFT_REPS (2)           runs of each Swift read row
#   WRITE_REPS (2)           runs of each write row
#   PREADS_NGINX (2000)      preads per run on nginx;  PREADS_SWIFT (300) on Swift
#   PREAD_REPS (2)           runs of each pread row (the table keeps the best)
#   TTFB_REPS (30)           opens in one process (warm);  TTFB_PROCS (10) fresh processes
#   TUNED ("S3SHIM_PART_SIZE=16M S3SHIM_MEMORY=96M")  settings of the one tuned shim read
#                            row ("" = no tuned row)
#   ONLY ("read write pread ttfb")  the benchmarks to run
#   BUDGET (540)             seconds; benchmarks not started by then are skipped (order:
#                            write, pread, ttfb, read; the last started one may run on)
#   OUT ($BUILD/bench/s3-results.txt)  the report is also written here; raw runs in
#                            $OUT.raw
#   KEEP_LOGS (0)            1: copy the daemon logs next to $OUT
#
# common.sh (shared with programs.sh) holds the clean environment, the work directory and
# its cleanup, Swift, the timing and the FUSE mounts.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_WHO=bench-s3
BUILD=${BUILD:-build}
SWIFT_LOG_LEVEL=WARNING
. "$HERE/common.sh"
bench_build_dir
S3IO=$BUILD/bench/s3io
SIZE_MB=${SIZE_MB:-1024}
SIZE=$((SIZE_MB * 1048576))
NGINX_REPS=${NGINX_REPS:-5}
SWIFT_REPS=${SWIFT_REPS:-2}
WRITE_REPS=${WRITE_REPS:-2}
PREADS_NGINX=${PREADS_NGINX:-2000}
PREADS_SWIFT=${PREADS_SWIFT:-300}
PREAD_REPS=${PREAD_REPS:-2}
TTFB_REPS=${TTFB_REPS:-30}
TTFB_PROCS=${TTFB_PROCS:-10}
TUNED=${TUNED-S3SHIM_PART_SIZE=16M S3SHIM_MEMORY=96M}
ONLY=${ONLY:-read write pread ttfb}
BUDGET=${BUDGET:-540}
OUT=${OUT:-$BUILD/bench/s3-results.txt}
KEEP_LOGS=${KEEP_LOGS:-0}
SEED=12345

want() { [[ " $ONLY " == *" $1 "* ]]; }

mkdir -p "$BUILD/bench" "$(dirname "$OUT")"
if [ ! -x "$S3IO" ] || [ "$HERE/s3io.c" -nt "$S3IO" ]; then
    cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o "$S3IO" "$HERE/s3io.c" || die "building s3io failed"
fi
"$RIG/install.sh" swift nginx clients || die "tests/s3rig/install.sh failed"
for t in /usr/bin/aws curl s3fs rclone fusermount python3 /usr/bin/time mountpoint; do
    command -v "$t" >/dev/null || die "$t is missing"
done
[ -e /dev/fuse ] || die "/dev/fuse is missing (FUSE is needed for s3fs and rclone)"

bench_setup "$SIZE"
mkdir -p "$SHM/root/$BUCKET"

# ------------------------------------------------------------------ data, servers
log "making the ${SIZE_MB} MiB object and a 1 KiB one in $SHM"
head -c "$SIZE" /dev/urandom > "$SHM/root/$BUCKET/obj" || die "cannot write $SHM"
head -c 1024 /dev/urandom > "$SHM/root/$BUCKET/small"
SRC=$SHM/root/$BUCKET/obj
# nginx answers GET /bench/ (with any query) with this file: a ListBucketResult, so that
# s3fs's bucket check and rclone's listing work on the anonymous static server.
stamp=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
cat > "$SHM/root/$BUCKET/index.html" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>$BUCKET</Name><Prefix></Prefix><Marker></Marker><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>obj</Key><LastModified>$stamp</LastModified><ETag>&quot;1&quot;</ETag><Size>$SIZE</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>small</Key><LastModified>$stamp</LastModified><ETag>&quot;2&quot;</ETag><Size>1024</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>
EOF

bench_start_swift
log "starting nginx"
NG_PORT=$(s3rig_free_port 127.0.0.1 18080) || die "no free port for nginx"
out=$("$RIG/start-nginx.sh" --root "$SHM/root" --dir "$WORK/nginx" --listen "127.0.0.1:$NG_PORT" --no-access-log) ||
    die "start-nginx.sh failed"
NG_EP=http://127.0.0.1:$NG_PORT
NG_PIDS=$(tree_pids $(awk '{ print $2 }' "$WORK/nginx/run/pids"))

# ------------------------------------------------------------------ read benchmarks
READ_TO=300
read_one() { # TOOL
    local tool=$1 rc st c0 c1 h
    case $tool in
    curl1)
        timed $READ_TO curl -sS -o /dev/null -w '%{http_code} %{size_download}\n' "${CURL_AUTH[@]}" "$EP/$BUCKET/obj" \
            > "$WORK/curl.out"
        rc=$?
        [ $rc = 0 ] && [ "$(cat "$WORK/curl.out")" = "200 $SIZE" ] || { fail read "$tool"; return; }
        rec read "$tool" "$T_WALL" "$T_RSS" "$T_CPU"
        ;;
    curl8)
        timed $READ_TO "$HERE/curl-ranges.sh" "$EP/$BUCKET/obj" "$SIZE" 8 "${CURL_AUTH[@]}" > "$WORK/curl8.out" ||
            { fail read "$tool"; return; }
        # the driver's own RSS/CPU is a shell's: report the sum over the 8 curls instead
        st=$(cat "$WORK/curl8.out")
        h=$(sed -n 's/.*rss_kb_sum=\([0-9]*\).*/\1/p' <<< "$st")
        c1=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<< "$st")
        rec read "$tool" "$T_WALL" "$h" "$c1" "note=RSS is the sum of 8 curls"
        ;;
    aws)
        timed $READ_TO env "${AWS_ENV[@]}" AWS_PAGER="" /usr/bin/aws --endpoint-url "$EP" "${AWS_SIGN[@]}" \
            s3 cp --only-show-errors "s3://$BUCKET/obj" /dev/null || { fail read "$tool"; return; }
        rec read "$tool" "$T_WALL" "$T_RSS" "$T_CPU"
        ;;
    s3fs|rclone)
        FUSE_RO=1 fuse_mount "$tool" || { fail read "$tool"; return; }
        c0=$(daemon_cpu "$FUSE_PID")
        timed $READ_TO cat "$MNT/obj" > /dev/null
        rc=$?
        c1=$(daemon_cpu "$FUSE_PID")
        h=$(daemon_hwm "$FUSE_PID")
        fuse_umount
        [ $rc = 0 ] || { fail read "$tool"; return; }
        rec read "$tool" "$T_WALL" "$h" "$(awk -v a="$T_CPU" -v b="$c0" -v c="$c1" 'BEGIN { printf "%.2f", a + c - b }')" \
            "note=RSS is the daemon's VmHWM; cpu = cat + daemon"
        ;;
    shim-cat)
        shim_run rcat $READ_TO cat "/s3/$BUCKET/obj" > /dev/null || { fail read "$tool"; return; }
        st=$(shim_stats rcat)
        [[ $st == *"fetched=$SIZE"* ]] || log "note: $SERVER $tool fetched ${st#*fetched=} bytes for $SIZE"
        rec read "$tool" "$T_WALL" "$T_RSS" "$T_CPU" ${st// /|}
        ;;
    shim-dd)
        shim_run rdd $READ_TO dd if="/s3/$BUCKET/obj" of=/dev/null bs=1M 2> "$WORK/dd.err" ||
            { cat "$WORK/dd.err" >&2; fail read "$tool"; return; }
        grep -q "^$SIZE bytes" "$WORK/dd.err" || { cat "$WORK/dd.err" >&2; fail read "$tool"; return; }
        st=$(shim_stats rdd)
        rec read "$tool" "$T_WALL" "$T_RSS" "$T_CPU" ${st// /|}
        ;;
    shim-tuned)
        # shellcheck disable=SC2086
        shim_run rtuned $READ_TO $TUNED cat "/s3/$BUCKET/obj" > /dev/null || { fail read "$tool"; return; }
        st=$(shim_stats rtuned)
        rec read "$tool" "$T_WALL" "$T_RSS" "$T_CPU" ${st// /|}
        ;;
    esac
}
read_bench() { # SERVER REPS
    srv "$1"
    local reps=$2 r tool tools="shim-cat curl1 shim-dd curl8 aws s3fs rclone"
    [ -n "$TUNED" ] && tools+=" shim-tuned"
    for r in $(seq 1 "$reps"); do
        for tool in $tools; do
            budget_ok "read $1 $tool" || return
            log "read $1 $tool (run $r of $reps)"
            read_one "$tool"
        done
    done
}

# ------------------------------------------------------------------ write benchmarks (Swift)
WRITE_TO=400
check_size() { # KEY: the object's size on the server equals SIZE
    local n
    n=$(aws_ s3api head-object --bucket "$BUCKET" --key "$1" --query ContentLength --output text 2>/dev/null)
    [ "$n" = "$SIZE" ] || { log "s3://$BUCKET/$1 has size '${n:-none}', expected $SIZE"; return 1; }
}
write_one() { # TOOL KEY
    local tool=$1 key=$2 rc c0 c1 h st
    case $tool in
    aws)
        timed $WRITE_TO env "${AWS_ENV[@]}" AWS_PAGER="" /usr/bin/aws --endpoint-url "$EP" \
            s3 cp --only-show-errors "$SRC" "s3://$BUCKET/$key" || { fail write "$tool"; return 1; }
        check_size "$key" || { fail write "$tool"; return 1; }
        rec write "$tool" "$T_WALL" "$T_RSS" "$T_CPU"
        ;;
    s3fs)
        FUSE_WAIT_FOR=. fuse_mount s3fs || { fail write "$tool"; return 1; }
        c0=$(daemon_cpu "$FUSE_PID")
        timed $WRITE_TO cp "$SRC" "$MNT/$key"
        rc=$?
        c1=$(daemon_cpu "$FUSE_PID")
        h=$(daemon_hwm "$FUSE_PID")
        fuse_umount
        [ $rc = 0 ] && check_size "$key" || { fail write "$tool"; return 1; }
        rec write "$tool" "$T_WALL" "$h" "$(awk -v a="$T_CPU" -v b="$c0" -v c="$c1" 'BEGIN { printf "%.2f", a + c - b }')" \
            "note=RSS is the daemon's VmHWM; cpu = cp + daemon"
        ;;
    shim-dd)
        shim_run wdd $WRITE_TO dd if=/dev/zero of="/s3/$BUCKET/$key" bs=1M count="$SIZE_MB" 2> "$WORK/dd.err" ||
            { cat "$WORK/dd.err" >&2; fail write "$tool"; return 1; }
        check_size "$key" || { fail write "$tool"; return 1; }
        st=$(shim_stats wdd)
        rec write "$tool" "$T_WALL" "$T_RSS" "$T_CPU" ${st// /|}
        ;;
    shim-cp)
        shim_run wcp $WRITE_TO cp "$SRC" "/s3/$BUCKET/$key" || { fail write "$tool"; return 1; }
        check_size "$key" || { fail write "$tool"; return 1; }
        st=$(shim_stats wcp)
        rec write "$tool" "$T_WALL" "$T_RSS" "$T_CPU" ${st// /|}
        ;;
    esac
}
write_bench() { # the first aws run is the upload of the object the reads use (made before)
    srv swift
    local r tool tools
    for r in $(seq 1 "$WRITE_REPS"); do
        tools="aws shim-dd s3fs shim-cp"
        [ "$r" = 1 ] && tools="shim-dd s3fs shim-cp"
        for tool in $tools; do
            budget_ok "write $tool" || return
            log "write swift $tool (run $r of $WRITE_REPS)"
            write_one "$tool" "w-$tool"
            aws_ s3 rm --only-show-errors "s3://$BUCKET/w-$tool" >/dev/null 2>&1
        done
    done
}

# ------------------------------------------------------------------ random preads
pread_bench() { # SERVER N
    srv "$1"
    local n=$2 bs cfg rc got st r
    for r in $(seq 1 "$PREAD_REPS"); do
    for bs in 4096 65536; do
        budget_ok "pread $1 $bs" || return
        log "pread $1 ${bs} B x $n: shim (run $r of $PREAD_REPS)"
        shim_run pr$bs 120 "$S3IO" pread "/s3/$BUCKET/obj" "$n" "$bs" "$SEED" > "$WORK/pread.out"
        rc=$?
        if [ $rc = 0 ]; then
            st=$(shim_stats pr$bs)
            got=$(cat "$WORK/pread.out")
            rec "pread$bs" shim "$T_WALL" "$T_RSS" "$T_CPU" ${got// /|} ${st// /|}
        else
            fail "pread$bs" shim
        fi
        log "pread $1 ${bs} B x $n: curl"
        cfg=$WORK/curl-ranges.cfg
        "$S3IO" ranges "$SIZE" "$n" "$bs" "$SEED" | while read -r range; do
            printf 'url = "%s"\nrange = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
                "$EP/$BUCKET/obj" "$range"
            if [ "$1" = swift ]; then
                printf 'aws-sigv4 = "aws:amz:%s:s3"\nnetrc-file = "%s"\nheader = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n' \
                    "$REGION" "$SW_NETRC"
            fi
            echo next
        done | sed '$d' > "$cfg"    # no "next" after the last URL
        timed 120 curl -sS -K "$cfg" > "$WORK/curl.codes"
        got=$(grep -c '^206$' "$WORK/curl.codes")
        if [ "$got" = "$n" ]; then
            rec "pread$bs" curl "$T_WALL" "$T_RSS" "$T_CPU" "n=$n" \
                "reqs_per_s=$(awk -v n="$n" -v t="$T_WALL" 'BEGIN { printf "%.1f", n / t }')"
        else
            fail "pread$bs" curl
        fi
    done
    done
}

# ------------------------------------------------------------------ time to first byte
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ttfb_bench() { # SERVER
    srv "$1"
    budget_ok "ttfb $1" || return
    local url=$EP/$BUCKET/small i cfg m_shim m_curl rss
    log "ttfb $1: fresh processes"
    : > "$WORK/ttfb.shim"
    : > "$WORK/ttfb.curl"
    : > "$WORK/proc.shim"
    : > "$WORK/proc.curl"
    for i in $(seq 1 "$TTFB_PROCS"); do
        # one plain GET in a new process: curl's own time to first byte
        curl -sS --max-time 30 -o /dev/null -w '%{time_starttransfer}\n' "${CURL_AUTH[@]}" "$url" >> "$WORK/ttfb.curl"
        shim_run ttfb 30 "$S3IO" ttfb "/s3/$BUCKET/small" 1 > "$WORK/ttfb.one" &&
            sed -n 's/^ttfb_us=\([0-9.]*\).*/\1/p' "$WORK/ttfb.one" | awk '{ print $1 / 1e6 }' >> "$WORK/ttfb.shim"
        rss=$T_RSS
        # whole process: start, first byte, exit
        timed 30 curl -sS -o /dev/null "${CURL_AUTH[@]}" "$url" && echo "$T_WALL" >> "$WORK/proc.curl"
        shim_run ttfbcat 30 cat "/s3/$BUCKET/small" > /dev/null && echo "$T_WALL" >> "$WORK/proc.shim"
    done
    m_curl=$(median < "$WORK/ttfb.curl")
    m_shim=$(median < "$WORK/ttfb.shim")
    rec ttfb-cold curl "$m_curl" 0 0 "n=$(wc -l < "$WORK/ttfb.curl")"
    rec ttfb-cold shim "$m_shim" "$rss" 0 "n=$(wc -l < "$WORK/ttfb.shim")"
    rec ttfb-proc curl "$(median < "$WORK/proc.curl")" 0 0 "n=$(wc -l < "$WORK/proc.curl")"
    rec ttfb-proc shim "$(median < "$WORK/proc.shim")" "$T_RSS" 0 "n=$(wc -l < "$WORK/proc.shim")"
    log "ttfb $1: $TTFB_REPS opens in one process / GETs on one connection"
    cfg=$WORK/curl-ttfb.cfg
    for i in $(seq 1 "$TTFB_REPS"); do
        printf 'url = "%s"\noutput = "/dev/null"\nwrite-out = "%%{time_starttransfer}\\n"\n' "$url"
        [ "$1" = swift ] && printf 'aws-sigv4 = "aws:amz:%s:s3"\nnetrc-file = "%s"\nheader = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n' \
            "$REGION" "$SW_NETRC"
        echo next
    done | sed '$d' > "$cfg"
    timeout 60 curl -sS -K "$cfg" > "$WORK/warm.curl"
    shim_run ttfbw 60 "$S3IO" ttfb "/s3/$BUCKET/small" "$TTFB_REPS" > "$WORK/warm.shim"
    rss=$T_RSS
    # the first of each is the cold one (connection set-up): the rest are warm
    rec ttfb-warm curl "$(tail -n +2 "$WORK/warm.curl" | median)" 0 0 "n=$(($(wc -l < "$WORK/warm.curl") - 1))"
    rec ttfb-warm shim "$(sed -n 's/^ttfb_us=\([0-9.]*\).*/\1/p' "$WORK/warm.shim" | tail -n +2 | awk '{ print $1 / 1e6 }' | median)" \
        "$rss" 0 "n=$(($(wc -l < "$WORK/warm.shim") - 1))"
}

# ------------------------------------------------------------------ the run
srv swift
aws_ s3 mb "s3://$BUCKET" >/dev/null || die "cannot create bucket $BUCKET on Swift"
aws_ s3 cp --only-show-errors "$SHM/root/$BUCKET/small" "s3://$BUCKET/small" || die "upload of small failed"
# The aws upload of the big object is the first write benchmark; without writes it is
# only the set-up.
if want write; then
    log "write swift aws (run 1 of $WRITE_REPS; the object the read benchmarks use)"
    write_one aws obj || die "could not upload the object"
    write_bench
else
    log "uploading the object to Swift"
    aws_ s3 cp --only-show-errors "$SRC" "s3://$BUCKET/obj" || die "upload failed"
fi
if want pread; then
    pread_bench nginx "$PREADS_NGINX"
    pread_bench swift "$PREADS_SWIFT"
fi
if want ttfb; then
    ttfb_bench nginx
    ttfb_bench swift
fi

if want read; then
    # correctness first, outside the timings: the shim returns exactly the object's bytes
    srv nginx
    log "checking the bytes read through the shim (nginx)"
    env "${SHIM_ENV[@]}" LD_PRELOAD="$LIB" cat "/s3/$BUCKET/obj" | cmp - "$SRC" ||
        die "the shim returned other bytes than the object's"
    read_bench nginx "$NGINX_REPS"
    read_bench swift "$SWIFT_REPS"
fi
# ------------------------------------------------------------------ report
swift_v=$(dpkg-query -W -f='${Version}' python3-swift 2>/dev/null || echo '?')
{
    machine_header
    echo "# peers: $(curl --version | head -1 | cut -d' ' -f1-2), $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1), s3fs $(s3fs --version 2>&1 | sed -n '1s/.*V\([0-9.]*\).*/\1/p'), rclone $(rclone version 2>/dev/null | sed -n '1s/rclone //p'), all with default settings"
    echo "# servers: nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///') at $NG_EP (anonymous, object in tmpfs, 2 workers); Swift $swift_v s3api at $SW_EP (SigV4, ${S3RIG_SWIFT_WORKERS:-1} proxy worker(s), object on local disk)"
    echo "# settings: SIZE_MB=$SIZE_MB NGINX_REPS=$NGINX_REPS SWIFT_REPS=$SWIFT_REPS WRITE_REPS=$WRITE_REPS PREADS_NGINX=$PREADS_NGINX PREADS_SWIFT=$PREADS_SWIFT PREAD_REPS=$PREAD_REPS TTFB_REPS=$TTFB_REPS TTFB_PROCS=$TTFB_PROCS TUNED='$TUNED'"
    python3 "$HERE/report.py" "$RAW" "$SIZE" "$TUNED"
} > "$OUT.new"
cp "$RAW" "$OUT.raw"
mv "$OUT.new" "$OUT"
cat "$OUT"
echo "(report in $OUT, every run in $OUT.raw)"
grep -q '^fail|' "$RAW" && exit 1
exit 0
