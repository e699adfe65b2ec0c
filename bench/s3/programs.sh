#!/usr/bin/env bash
# programs.sh - issue 10's benchmarks (`make bench-programs`): everyday programs on objects
# in S3 through the shim, against the same programs on an s3fs mount (which stages too)
# and against "aws s3 cp, then run locally", in one run on one machine, on the project's
# Swift rig.  Every case prints the peers' figures, ours and the ratios; every arm's
# result is checked (bench/README.md, "Programs on S3").
#
# Cases (ONLY, default all):
#   zip      `zip -r -X -1 -n .jpg:.gz` of a TREE_MB tree (mktree.py: 40% log-like text,
#            60% random data named .jpg/.gz, which -n stores without trying to compress, so
#            that zip's own deflate does not dominate) into S3.  Arms: shim (/s3/bench/K),
#            zip into an s3fs mount, zip to a local file + `aws s3 cp` up.  Checked: the
#            archive aws fetches has the sha256 of the local zip (zip -X is deterministic),
#            which passes `unzip -t`.
#   sqlite   sqlite3 on a DB_MB database in S3: an indexed point lookup, a range scan over
#            the index (1% of the rows), a full-table aggregate, and one read-write
#            transaction (5 rows updated, one inserted).  Each query is one sqlite3 process.
#            Arms: shim, s3fs mount, `aws s3 cp` down + sqlite3 locally (+ `aws s3 cp` up
#            for the write).  Checked: query outputs equal the local run's; after the write
#            the database aws fetches has the sha256 of the same transaction done locally.
#            Each round also times the server's floors (sqlite_floors): the database read
#            whole (the shim's cat) and copied on the server (CopyObject; aws s3 cp's
#            parallel UploadPartCopy), and the report prints the largest ratio against
#            s3fs that they leave to any client.
#   patch    4 KiB written at an offset of a PATCH_MB random object (dd conv=notrunc
#            seek=...: O_WRONLY without O_TRUNC).  Arms: shim, s3fs mount.  Counted: bytes
#            the server sent and received and its requests (Swift's proxy access log), the
#            shim's own statistics.  Checked: sha256 of what aws fetches = the local patch.
#   small    SMALL_N files of 4 KiB (directories of 100) into a new directory in S3, two
#            ways: `cp -r` of the tree and `tar xf` of it.  Arms: shim, s3fs mount, the
#            program locally + `aws s3 cp --recursive` up.  Checked: the number of objects
#            (directory markers aside) and their total size on the server.
#   seqwrite dd if=/dev/zero bs=1M count=SEQ_MB and cp of a random file, through the shim,
#            with `aws s3 cp` of the same file in the same run, to set against the figures
#            recorded for issue 3 in bench/RESULTS.md (no regression).
# Arms alternate within a round and their order turns every round (ABC, BCA, ...).  The
# bytes an arm left on the server are checked in round 1 (sha256 of what aws fetches);
# later rounds check the size only, to keep the run short.  A peer that fails is reported
# (peerfail) and does not fail the run; a failure of ours does.
#
# Environment:
#   BUILD (build)  TREE_MB (1024)  DB_MB (1024)  PATCH_MB (1024)  SEQ_MB (1024)
#   SMALL_N (1000)
#   REPS (2)       rounds of every case;  ONLY ("zip sqlite patch small seqwrite")
#   DATA_DIR       keep the generated tree and database here between runs (default: in the
#                  work directory, deleted at the end)
#   BUDGET (900)   seconds; rounds not started by then are skipped
#   OUT ($BUILD/bench/programs-results.txt): the report; raw runs in $OUT.raw
#   KEEP_LOGS (0)  1: copy the daemons' logs (Swift's access log too) next to $OUT
#   S3RIG_SWIFT_WORKERS (1): the Swift proxy's worker processes (2: the server is no
#                  longer one Python process, so its floors move below the peers' times)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_WHO=bench-programs
BUILD=${BUILD:-build}
SWIFT_LOG_LEVEL=INFO    # the proxy's access log counts requests and bytes
. "$HERE/common.sh"
bench_build_dir
TREE_MB=${TREE_MB:-1024}
DB_MB=${DB_MB:-1024}
PATCH_MB=${PATCH_MB:-1024}
SEQ_MB=${SEQ_MB:-1024}
SMALL_N=${SMALL_N:-1000}
REPS=${REPS:-2}
ONLY=${ONLY:-zip sqlite patch small seqwrite}
BUDGET=${BUDGET:-900}
OUT=${OUT:-$BUILD/bench/programs-results.txt}
KEEP_LOGS=${KEEP_LOGS:-0}
DATA_DIR=${DATA_DIR:-}
TO=600
ZIPOPT=(-q -r -X -1 -n .jpg:.gz)

want() { [[ " $ONLY " == *" $1 "* ]]; }
mkdir -p "$(dirname "$OUT")"
"$RIG/install.sh" swift clients || die "tests/s3rig/install.sh failed"
for t in /usr/bin/aws s3fs fusermount python3 /usr/bin/time mountpoint zip unzip sqlite3 dd sha256sum; do
    command -v "$t" >/dev/null || die "$t is missing"
done
[ -e /dev/fuse ] || die "/dev/fuse is missing (FUSE is needed for s3fs)"

bench_setup $((PATCH_MB > SEQ_MB ? PATCH_MB << 20 : SEQ_MB << 20))
DATA=${DATA_DIR:-$WORK/data}
mkdir -p "$DATA" "$WORK/staging" "$WORK/local" "$WORK/out"
bench_start_swift
srv swift
SHIM_ENV+=(S3SHIM_STAGING_DIR="$WORK/staging")
aws_ s3 mb "s3://$BUCKET" >/dev/null || die "cannot create bucket $BUCKET on Swift"
S3=/s3/$BUCKET
S3FS_MNT=$WORK/mnt-s3fs

# ------------------------------------------------------------------ counting (Swift's access log)
# Every client request is one line of the proxy's log: "proxy-server: CLIENT REMOTE DATE
# METHOD PATH PROTO STATUS REFERER AGENT TOKEN BYTES_IN BYTES_OUT ..." (the middleware's
# own subrequests start with "- -").  A PUT without a body is a server-side copy
# (CopyObject, UploadPartCopy) or an empty object.
log_mark() { stat -c %s "$SW_LOG"; }
log_count() { # FROM: "reqs=N up=BYTES down=BYTES copies=N" since the mark FROM
    sleep 0.5   # the proxy writes its line when the answer is sent
    tail -c +$(($1 + 1)) "$SW_LOG" | awk '$1 == "proxy-server:" && $2 != "-" && NF > 13 {
        n++; if ($12 != "-") up += $12; if ($13 != "-") down += $13
        if ($5 == "PUT" && ($12 == "-" || $12 == 0)) c++ }
        END { printf "reqs=%d up=%d down=%d copies=%d\n", n, up, down, c }'
}
# arm ARM TIMEOUT CMD...: CMD timed; shim: under the shim; s3fs: with a fresh mount at
# $S3FS_MNT (cpu = CMD + daemon, rss = the daemon's VmHWM, unmounted afterwards); local:
# as it is.  Sets COUNTS (server side) and ST (the shim's statistics).
arm() {
    local a=$1 to=$2 m rc c0 c1 h
    shift 2
    m=$(log_mark)
    ST=""
    case $a in
    shim)
        shim_run "$a" "$to" "$@"
        rc=$?
        ST=$(shim_stats "$a")
        ;;
    s3fs|s3fs-nomix)
        if [ $a = s3fs ]; then FUSE_WAIT_FOR=. fuse_mount s3fs || return 1
        else S3FS_OPT=$S3FS_OPT,nomixupload FUSE_WAIT_FOR=. fuse_mount s3fs || return 1; fi
        m=$(log_mark)
        c0=$(daemon_cpu "$FUSE_PID")
        timed "$to" "$@"
        rc=$?
        c1=$(daemon_cpu "$FUSE_PID")
        h=$(daemon_hwm "$FUSE_PID")
        T_CPU=$(awk -v a="$T_CPU" -v b="$c0" -v c="$c1" 'BEGIN { printf "%.2f", a + c - b }')
        T_RSS=$h
        fuse_umount
        ;;
    *)
        timed "$to" "$@"
        rc=$?
        ;;
    esac
    COUNTS=$(log_count "$m")
    return $rc
}
# record CASE ARM [KEY=VALUE...]: the last arm's figures
record() {
    local c=$1 a=$2 st=""
    shift 2
    [ -n "$ST" ] && st="shim_${ST// /|shim_}"
    rec "$c" "$a" "$T_WALL" "$T_RSS" "$T_CPU" ${COUNTS// /|} $st "$@"
}
# order R ARMS...: the arms turned by R-1 places (ABC, BCA, CAB, ...)
order() { local r=$1 i n; shift; n=$#; local a=("$@"); for ((i = 0; i < n; i++)); do echo "${a[((i + r - 1) % n)]}"; done; }
sha_of_object() { aws_ s3 cp --only-show-errors "s3://$BUCKET/$1" - | sha256sum | cut -c1-64; }
size_of_object() { aws_ s3api head-object --bucket "$BUCKET" --key "$1" --query ContentLength --output text 2>/dev/null; }
# check_object ROUND KEY SHA256 SIZE: the object is the expected one: in round 1 its bytes
# (aws fetches it), in later rounds its size (fetching 1 GiB per arm and round would make the
# run far longer than the measurements)
check_object() {
    if [ "$1" = 1 ]; then [ "$(sha_of_object "$2")" = "$3" ]; else [ "$(size_of_object "$2")" = "$4" ]; fi
}
rm_object() { aws_ s3 rm --only-show-errors "s3://$BUCKET/$1" >/dev/null 2>&1; }
copy_object() { # SRC DST: one CopyObject (aws s3 cp would copy in 8 MiB parts, much slower on Swift)
    aws_ s3api copy-object --copy-source "$BUCKET/$1" --bucket "$BUCKET" --key "$2" >/dev/null || die "copying $1 to $2 failed"
}
# path ARM KEY: where the program sees s3://BUCKET/KEY in that arm
path() { case $1 in shim) echo "$S3/$2" ;; s3fs*) echo "$S3FS_MNT/$2" ;; esac; }
# failed CASE ARM: a failed arm; the peers' failures are reported, ours also fail the run
failed() { if [ "$2" = shim ] || [[ $2 == shim-* ]]; then fail "$1" "$2"; else log "FAILED (peer): $1 $2"; echo "peerfail|$SERVER|$1|$2" >> "$RAW"; fi; }

# ------------------------------------------------------------------ zip
zip_case() {
    local r a key want wsize rc
    if [ ! -f "$DATA/tree.done" ] || [ "$(cat "$DATA/tree.done")" != "$TREE_MB" ]; then
        log "zip: making the ${TREE_MB} MiB tree in $DATA/tree"
        rm -rf "$DATA/tree"
        python3 "$HERE/mktree.py" "$DATA/tree" "$TREE_MB" > "$WORK/tree.out" || die "mktree.py failed"
        touch -d '2026-01-02 03:04:05' "$DATA/tree"
        echo "$TREE_MB" > "$DATA/tree.done"
    fi
    log "zip: the local reference archive"
    (cd "$DATA" && zip "${ZIPOPT[@]}" "$WORK/local/ref.zip" tree) || die "zip of the tree failed"
    unzip -tq "$WORK/local/ref.zip" > /dev/null || die "unzip -t of the reference archive failed"
    want=$(sha256sum < "$WORK/local/ref.zip" | cut -c1-64)
    wsize=$(stat -c %s "$WORK/local/ref.zip")
    rm -f "$WORK/local/ref.zip"
    for r in $(seq 1 "$REPS"); do
        for a in $(order "$r" shim s3fs local); do
            budget_ok "zip $a (round $r)" || return
            key=zip-$a.zip
            rm_object "$key"
            log "zip: $a (round $r of $REPS)"
            cd "$DATA" || die "cd $DATA"
            case $a in
            local) arm local $TO bash -c 'zip "${@:3}" "$1" tree && /usr/bin/aws --endpoint-url "$EP" s3 cp --only-show-errors "$1" "$2"' \
                       _ "$WORK/local/out.zip" "s3://$BUCKET/$key" "${ZIPOPT[@]}" ;;
            *) arm "$a" $TO zip "${ZIPOPT[@]}" "$(path "$a" "$key")" tree ;;
            esac
            rc=$?
            cd "$WORK" || die "cd $WORK"
            rm -f "$WORK/local/out.zip"
            [ $rc = 0 ] || { failed zip "$a"; continue; }
            check_object "$r" "$key" "$want" "$wsize"
            rc=$?
            rm_object "$key"
            [ $rc = 0 ] || { log "zip $a: the archive on the server differs from the local one"; failed zip "$a"; continue; }
            record zip "$a" ok=1
        done
    done
}

# ------------------------------------------------------------------ sqlite
Q_POINT="SELECT id, customer, status, amount FROM orders WHERE created = 1700000000 + 7 * (ROWS * 46 / 100);"
Q_RANGE="SELECT count(*), round(sum(amount), 2) FROM orders WHERE created BETWEEN 1700000000 + 7 * (ROWS / 3) AND 1700000000 + 7 * (ROWS / 3 + ROWS / 100);"
Q_FULL="SELECT status, count(*), round(sum(amount), 2) FROM orders GROUP BY status ORDER BY status;"
Q_WRITE="BEGIN; UPDATE orders SET status = 'refunded', amount = 0 WHERE id IN (11, ROWS / 7, ROWS / 3, ROWS / 2, ROWS - 7);
INSERT INTO orders(customer, created, status, amount, note) VALUES (42, 1800000000, 'new', 9.99, 'inserted by the benchmark'); COMMIT;
SELECT changes(), total_changes();"
sqlite_case() {
    local rows r a q sql key want wsize rc
    rows=$(( (DB_MB << 20) / 182 ))   # about 182 bytes a row, indexes included
    if [ ! -f "$DATA/db.done" ] || [ "$(cat "$DATA/db.done")" != "$DB_MB" ]; then
        log "sqlite: making the ${DB_MB} MiB database ($rows rows)"
        rm -f "$DATA/db.sqlite"
        sqlite3 "$DATA/db.sqlite" "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -200000;
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, created INTEGER NOT NULL, status TEXT NOT NULL, amount REAL NOT NULL, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $rows)
INSERT INTO orders SELECT x, (x * 7919) % 100003, 1700000000 + x * 7,
    CASE x % 5 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' WHEN 3 THEN 'delivered' ELSE 'returned' END,
    ((x * 2654435761) % 100000) / 100.0, hex(randomblob(60)) FROM c;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_created ON orders(created);
PRAGMA journal_mode = DELETE;" > /dev/null || die "making the database failed"
        echo "$DB_MB" > "$DATA/db.done"
    fi
    rows=$(sqlite3 "$DATA/db.sqlite" "SELECT max(id) FROM orders;")
    aws_ s3 cp --only-show-errors "$DATA/db.sqlite" "s3://$BUCKET/db.sqlite" || die "uploading the database failed"
    # the expected answers: the same statements on the local file
    for q in point range full; do
        sql=Q_${q^^}; sqlite3 "$DATA/db.sqlite" "${!sql//ROWS/$rows}" > "$WORK/out/$q.want" || die "local query $q failed"
    done
    cp "$DATA/db.sqlite" "$WORK/local/dbw.sqlite"
    sqlite3 "$WORK/local/dbw.sqlite" "${Q_WRITE//ROWS/$rows}" > "$WORK/out/write.want" || die "local write failed"
    want=$(sha256sum < "$WORK/local/dbw.sqlite" | cut -c1-64)
    wsize=$(stat -c %s "$WORK/local/dbw.sqlite")
    rm -f "$WORK/local/dbw.sqlite"
    for r in $(seq 1 "$REPS"); do
        for a in $(order "$r" shim s3fs local); do
            for q in point range full write; do
                budget_ok "sqlite $q $a (round $r)" || return
                sql=Q_${q^^}; sql=${!sql//ROWS/$rows}
                key=db.sqlite
                if [ $q = write ]; then key=dbw-$a.sqlite; copy_object db.sqlite "$key"; fi
                log "sqlite: $q, $a (round $r of $REPS)"
                case $a in
                local)
                    if [ $q = write ]; then
                        arm local $TO bash -c 'aws_() { /usr/bin/aws --endpoint-url "$EP" s3 cp --only-show-errors "$@"; }
                            aws_ "$1" "$2" && sqlite3 "$2" "$3" && aws_ "$2" "$1"' _ "s3://$BUCKET/$key" "$WORK/local/db.sqlite" "$sql"
                    else
                        arm local $TO bash -c '/usr/bin/aws --endpoint-url "$EP" s3 cp --only-show-errors "$1" "$2" && sqlite3 "$2" "$3"' \
                            _ "s3://$BUCKET/$key" "$WORK/local/db.sqlite" "$sql"
                    fi ;;
                *) arm "$a" $TO sqlite3 "$(path "$a" "$key")" "$sql" ;;
                esac > "$WORK/out/$q.$a"
                rc=$?
                rm -f "$WORK/local/db.sqlite"
                [ $rc = 0 ] || { failed "sqlite-$q" "$a"; continue; }
                cmp -s "$WORK/out/$q.want" "$WORK/out/$q.$a" || { log "sqlite $q $a: other output"; failed "sqlite-$q" "$a"; continue; }
                if [ $q = write ]; then
                    check_object "$r" "$key" "$want" "$wsize"
                    rc=$?
                    rm_object "$key"
                    aws_ s3api head-object --bucket "$BUCKET" --key "$key-journal" > /dev/null 2>&1 &&
                        { log "sqlite write $a: a journal was left on the server"; failed "sqlite-$q" "$a"; continue; }
                    [ $rc = 0 ] || { log "sqlite write $a: the database on the server is not the local result"; failed "sqlite-$q" "$a"; continue; }
                fi
                record "sqlite-$q" "$a" ok=1
            done
        done
        sqlite_floors "$r"
    done
}
# sqlite_floors ROUND: what the server itself allows, the same round: the whole database
# read out of it (the shim's `cat`, the fastest reader we have; the full-table aggregate
# reads all of it) and the database copied inside it (any change to an S3 object rewrites
# all of it: one CopyObject sent by curl, and aws s3 cp's UploadPartCopy parts in
# parallel, its start-up included). No client does the aggregate faster than the first;
# the second says what rewriting the object costs this server.
sqlite_floors() {
    local m
    budget_ok "sqlite floors (round $1)" || return
    log "sqlite: the server's floors (round $1 of $REPS)"
    COUNTS=""
    arm shim $TO cat "$S3/db.sqlite" > /dev/null && record sqlite-floor read
    rm_object dbcopy.sqlite
    m=$(log_mark); ST=""
    timed $TO curl -sSf --max-time "$TO" "${CURL_AUTH[@]}" \
        -H "x-amz-copy-source: /$BUCKET/db.sqlite" -X PUT -o /dev/null \
        "$EP/$BUCKET/dbcopy.sqlite" && { COUNTS=$(log_count "$m"); record sqlite-floor copy-one; }
    rm_object dbcopy.sqlite
    m=$(log_mark)
    timed $TO /usr/bin/aws --endpoint-url "$EP" s3 cp --only-show-errors "s3://$BUCKET/db.sqlite" "s3://$BUCKET/dbcopy.sqlite" &&
        { COUNTS=$(log_count "$m"); record sqlite-floor copy-parts; }
    rm_object dbcopy.sqlite
}

# ------------------------------------------------------------------ patch 4 KiB
patch_case() {
    local r a key off want rc
    off=$(( (PATCH_MB << 8) / 2 + 3 ))   # in 4 KiB blocks: the middle of the object, + 12 KiB
    log "patch: a ${PATCH_MB} MiB random object, 4 KiB patched at $((off * 4096))"
    head -c $((PATCH_MB << 20)) /dev/urandom > "$SHM/patch.src" || die "cannot write $SHM"
    head -c 4096 /dev/urandom > "$WORK/patch.4k"
    aws_ s3 cp --only-show-errors "$SHM/patch.src" "s3://$BUCKET/patch-src" || die "uploading the object failed"
    dd if="$WORK/patch.4k" of="$SHM/patch.src" bs=4096 seek=$off conv=notrunc status=none
    want=$(sha256sum < "$SHM/patch.src" | cut -c1-64)
    rm -f "$SHM/patch.src"
    for r in $(seq 1 "$REPS"); do
        for a in $(order "$r" shim s3fs s3fs-nomix); do
            budget_ok "patch $a (round $r)" || return
            key=patch-$a
            copy_object patch-src "$key"
            log "patch: $a (round $r of $REPS)"
            arm "$a" $TO dd if="$WORK/patch.4k" of="$(path "$a" "$key")" bs=4096 seek=$off conv=notrunc status=none ||
                { failed patch "$a"; rm_object "$key"; continue; }
            check_object "$r" "$key" "$want" $((PATCH_MB << 20))
            rc=$?
            rm_object "$key"
            [ $rc = 0 ] || { log "patch $a: the object on the server is not the local patch"; failed patch "$a"; continue; }
            record patch "$a" ok=1
        done
    done
    rm_object patch-src
}

# ------------------------------------------------------------------ sequential write
seqwrite_case() {
    local r a n
    head -c $((SEQ_MB << 20)) /dev/urandom > "$SHM/seq.src" || die "cannot write $SHM"
    for r in $(seq 1 "$REPS"); do
        for a in $(order "$r" shim-dd aws shim-cp); do
            budget_ok "seqwrite $a (round $r)" || return
            log "seqwrite: $a (round $r of $REPS)"
            case $a in
            shim-dd) arm shim $TO dd if=/dev/zero of="$S3/seq-$a" bs=1M count="$SEQ_MB" status=none ;;
            shim-cp) arm shim $TO cp "$SHM/seq.src" "$S3/seq-$a" ;;
            aws) arm local $TO env "${AWS_ENV[@]}" AWS_PAGER="" /usr/bin/aws --endpoint-url "$EP" s3 cp --only-show-errors \
                     "$SHM/seq.src" "s3://$BUCKET/seq-$a" ;;
            esac || { failed seqwrite "$a"; continue; }
            n=$(aws_ s3api head-object --bucket "$BUCKET" --key "seq-$a" --query ContentLength --output text 2>/dev/null)
            rm_object "seq-$a"
            [ "$n" = $((SEQ_MB << 20)) ] || { log "seqwrite $a: size on the server ${n:-none}"; failed seqwrite "$a"; continue; }
            record seqwrite "$a" ok=1
        done
    done
    rm -f "$SHM/seq.src"
}

# ------------------------------------------------------------------ small files
# listed KEY: "OBJECTS BYTES" under KEY/, directory markers aside
listed() {
    aws_ s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1/" --query "Contents[?!ends_with(Key, '/')].[Size]" \
        --output text 2>/dev/null | awk '$1 != "None" { n++; s += $1 } END { print n + 0, s + 0 }'
}
small_case() {
    local r a op key rc got want="$SMALL_N $((SMALL_N * 4096))"
    if [ ! -f "$DATA/small.done" ] || [ "$(cat "$DATA/small.done")" != "$SMALL_N" ]; then
        log "small: making $SMALL_N files of 4 KiB in $DATA/small"
        rm -rf "$DATA/small"
        python3 - "$DATA/small" "$SMALL_N" <<'PY' || die "making the small files failed"
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(4096))
PY
        echo "$SMALL_N" > "$DATA/small.done"
    fi
    tar cf "$WORK/small.tar" -C "$DATA" small || die "tar cf of the small files failed"
    for op in cp tar; do
        for r in $(seq 1 "$REPS"); do
            for a in $(order "$r" shim s3fs local); do
                budget_ok "small $op $a (round $r)" || return
                key=small-$op-$a-$r
                log "small: $op, $a (round $r of $REPS)"
                rm -rf "$WORK/local/small"
                case $op:$a in
                cp:local) arm local $TO env "${AWS_ENV[@]}" /usr/bin/aws --endpoint-url "$EP" s3 cp --only-show-errors \
                              --recursive "$DATA/small" "s3://$BUCKET/$key" ;;
                tar:local) arm local $TO bash -c 'tar xf "$1" -C "$2" && /usr/bin/aws --endpoint-url "$EP" s3 cp \
                               --only-show-errors --recursive "$2/small" "$3"' _ "$WORK/small.tar" "$WORK/local" \
                               "s3://$BUCKET/$key" ;;
                cp:*) arm "$a" $TO cp -r "$DATA/small" "$(path "$a" "$key")" ;;
                tar:*) arm "$a" $TO tar xf "$WORK/small.tar" -C "$(path "$a" "")" --transform "s|^small|$key|" ;;
                esac
                rc=$?
                rm -rf "$WORK/local/small"
                [ $rc = 0 ] || { failed "small-$op" "$a"; continue; }
                got=$(listed "$key")
                aws_ s3 rm --only-show-errors --recursive "s3://$BUCKET/$key" >/dev/null 2>&1
                [ "$got" = "$want" ] || { log "small $op $a: the server has '$got' (objects bytes), not '$want'"; failed "small-$op" "$a"; continue; }
                record "small-$op" "$a" ok=1
            done
        done
    done
    rm -f "$WORK/small.tar"
}

# ------------------------------------------------------------------ the run
export EP   # for the local arms' bash -c
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-creds AWS_REGION=$REGION \
    AWS_DEFAULT_REGION=$REGION AWS_ACCESS_KEY_ID=$SW_KEY AWS_SECRET_ACCESS_KEY=$SW_SECRET AWS_PAGER=""
# (the shim runs get the same through SHIM_ENV; s3fs takes its keys from S3FS_ENV)
for c in zip sqlite patch small seqwrite; do want $c && ${c}_case; done
swift_v=$(dpkg-query -W -f='${Version}' python3-swift 2>/dev/null || echo '?')
{
    machine_header
    echo "# peers: $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1), s3fs $(s3fs --version 2>&1 | sed -n '1s/.*V\([0-9.]*\).*/\1/p') (default settings), $(zip -v | sed -n '2s/^This is \(Zip [0-9.]*\).*/\1/p'), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
    echo "# server: Swift $swift_v s3api at $SW_EP (SigV4, ${S3RIG_SWIFT_WORKERS:-1} proxy worker(s), objects on local disk); staging and s3fs's and the local arms' files on the same disk"
    echo "# settings: TREE_MB=$TREE_MB DB_MB=$DB_MB PATCH_MB=$PATCH_MB SMALL_N=$SMALL_N SEQ_MB=$SEQ_MB REPS=$REPS zip ${ZIPOPT[*]}"
    python3 "$HERE/programs_report.py" "$RAW"
} > "$OUT.new"
cp "$RAW" "$OUT.raw"
mv "$OUT.new" "$OUT"
cat "$OUT"
echo "(report in $OUT, every run in $OUT.raw)"
grep -q '^fail|' "$RAW" && exit 1
exit 0
