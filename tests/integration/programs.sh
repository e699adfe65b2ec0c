# tests/integration/programs.sh - sourced by run.sh: the programs legacy pipelines run,
# inside the mount, against the same commands in the real directory (t: output, exit
# status and both trees compared). They are the ones that write otherwise than straight
# through: O_RDWR pages and journals (sqlite3), temporaries renamed over their target
# (zip, git, rsync), headers patched after the data (zip, Python's zipfile), reads back
# from their own temporaries (sort -T), appends to an archive (tar rf/uf), MAP_SHARED
# writes (numpy). Each command removes what it made: sqlite's files, git's index and
# rsync's trees carry inode numbers or times of now, which no two directories share.

section "programs people run: sqlite3, zip, zipfile, git, rsync, sort -T, tar rf/uf, numpy"
# (SQL in variables: the commands are single-quoted, and SQL's strings are too)
export SQ_MAKE="create table t(id integer primary key, s text);
with recursive c(x) as (select 1 union all select x + 1 from c where x < 3000) insert into t(s) select printf('row %05d', x) from c;
update t set s = s || ' upd' where id % 7 = 0; delete from t where id % 11 = 0; create index i on t(s);"
export SQ_MORE="select count(*), sum(length(s)) from t; pragma integrity_check; begin; insert into t(s) values ('late'); commit; select max(id) from t;"
t "sqlite3: create, insert, update, delete, index; a WAL database; integrity_check, .dump" 'mkdir sq
sqlite3 sq/t.db "$SQ_MAKE"; sqlite3 sq/t.db "$SQ_MORE"; sqlite3 sq/t.db .dump | sha256sum
sqlite3 sq/w.db "pragma journal_mode=wal; create table w(x); insert into w values (1), (2);"
sqlite3 sq/w.db "insert into w select x + 2 from w; select count(*), sum(x) from w; pragma wal_checkpoint(truncate); pragma integrity_check;"
ls sq; rm -r sq' "write.count>0"
t "zip -r, zip (add), zip -d, unzip -Z1 / -t / -p, unzip into the mount" 'zip -q -r -X z.zip sub lines.txt; echo rc=$?
unzip -Z1 z.zip | sort; unzip -tq z.zip; unzip -p z.zip lines.txt | sha256sum
echo extra >zextra.txt; zip -q -X z.zip zextra.txt; zip -q -d z.zip lines.txt; unzip -Z1 z.zip | sort
mkdir uz && cd uz && unzip -q ../z.zip && cd .. && diff -r sub uz/sub && echo same; rm -r z.zip zextra.txt uz' "write.count>0"
t "Python zipfile: write (headers patched after each member), append, read, testzip" '"$PY" "$HERE/py_programs.py" zipfile' \
    "write.count>0"
# Times fixed so that the commit ids are the same on both sides; our one log line for a
# link refused (git tries link() before rename() for each object) is left out of stderr.
t "git init, add, commit, gc, fsck, clone --no-local, log" 'export GIT_AUTHOR_DATE=@1600000000 GIT_COMMITTER_DATE=@1600000000 GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 S3SHIM_LOG=error
git init -q -b main g && cd g && git config user.name t && git config user.email t@example.com
cp ../lines.txt ../text.txt . && git add . && git commit -qm one && echo two >>text.txt && git commit -qam two
git log --format="%H %s"; git gc -q; git fsck --no-progress && echo fsck-ok; git status --short; cd ..
git clone -q --no-local g g2 && git -C g2 log --format=%H && git -C g2 status --short && cmp g/text.txt g2/text.txt && echo same
rm -rf g g2' "write.count>0"
t "rsync -a into the mount, again (nothing to do), out of it, --delete" 'rsync -a sub/ rs/; echo rc=$?; rsync -ai sub/ rs/; echo rc=$?
find rs -printf "%P %y %s %m %T@\n" | newts | sort; diff -r sub rs && echo same
rsync -a rs/ "$O/rsout/" && diff -r sub "$O/rsout" && echo same-out
rm rs/b/y.txt; rsync -ai --delete rs/ "$O/rsout/" | sort; ls "$O/rsout/b"; rm -r rs "$O/rsout"'
# What rsync 3.5 does, by hand: the mount's parent (not on disk) listed, then walked down
# from a descriptor of "/" one component at a time (fstatat and openat with O_NOFOLLOW),
# then fchdir to the mount.
r=$W/ancestor
shim_env "$MOUNTS" "$PY" -c '
import errno, os, stat, subprocess, sys
root, mp = sys.argv[1], sys.argv[2]
out = [sorted(os.listdir(root)), os.path.isdir(root)]
fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
for comp in mp.strip("/").split("/"):
    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
    nfd = os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    os.close(fd)
    fd = nfd
    out.append((comp == os.path.basename(root) and "parent" or comp, stat.S_ISDIR(st.st_mode)))
    if comp == os.path.basename(root): # writes through the parent fail as by path (ENOENT)
        for f in (lambda: os.mkdir("anc-made-dir", dir_fd=fd),
                  lambda: os.open("anc-made-file", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)):
            try: f(); out.append("written")
            except OSError as e: out.append(e.errno == errno.ENOENT)
        pfd = os.open(".", os.O_RDONLY, dir_fd=fd)
os.fchdir(fd)
out += [os.getcwd() == mp, open("hello.txt").read().strip()]
os.fchdir(pfd) # into the parent: a virtual cwd, inherited by a child
out += [os.getcwd() == root, open("m/hello.txt").read().strip(),
        subprocess.run(["sh", "-c", "pwd; cat m/hello.txt"], capture_output=True, text=True).stdout.split()]
print(out)' "$MROOT" "$MP" >"$r.out" 2>&1
check "the mount's parent (not on disk): lists the mount; walked down by descriptor from / (fstatat, openat O_NOFOLLOW), mkdir and create through it fail with ENOENT, fchdir into the mount and into the parent (a child inherits it)" \
    grep -qxF "[['m'], True, ('parent', True), True, True, ('m', True), True, 'hello world', True, 'hello world', ['$MROOT', 'hello', 'world']]" "$r.out"
[ -s "$r.out" ] && sed 's/^/# /' "$r.out" | head -3
check "walking down did not create the mount's parent on the real disk, nor anything under the stand-ins' directory" \
    sh -c "test ! -e '$MROOT' && test -z \"\$(find /tmp/.s3shim-anc-$(id -u) -name 'anc-made-*' 2>/dev/null)\""
# Directories above the mount list it, as a mount point's parent would: by path (ls,
# os.listdir, os.walk) and from a descriptor (find walks with openat and fdopendir), the
# one not on disk and "/", and a real directory in which the mount's name is missing
# (next to its own entries). find must not take two of them for a loop (their inodes).
r=$W/ancestor-list
mkdir -p "$W/ra/sub" "$W/ra-back" && echo other >"$W/ra/other" && echo far >"$W/ra-back/far.txt"
shim_env "$MOUNTS;$W/ra/sub/m2=file://$W/ra-back" "$PY" -c '
import os, subprocess, sys
root, mp, ra = sys.argv[1:4]
sh = lambda c: subprocess.run(["sh", "-c", c, "sh", root, mp, ra], capture_output=True, text=True).stdout.split()
print(sh("ls -a \"$1\""), sh("find \"$1\" -name hello.txt"))
print(int(sh("find \"$1\" | wc -l")[0]) == int(sh("find \"$2\" | wc -l")[0]) + 1, root[1:] in sh("ls /"))
print(sh("ls \"$3\"; ls \"$3/sub\"; find \"$3\" -name far.txt"))
print(sorted(os.listdir(root)), [d for d, _, f in os.walk(ra) if "far.txt" in f])
import ctypes # seekdir(telldir()) after each entry goes on (it started the names again)
c = ctypes.CDLL(None); c.opendir.restype = c.readdir.restype = ctypes.c_void_p
c.readdir.argtypes = c.telldir.argtypes = c.closedir.argtypes = [ctypes.c_void_p]
c.telldir.restype = ctypes.c_long; c.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
d, names = c.opendir(root.encode()), []
while len(names) < 10:
    e = c.readdir(d)
    if not e: break
    names.append(ctypes.string_at(e + 19).decode()); c.seekdir(d, c.telldir(d))
c.closedir(d); print(names)
' "$MROOT" "$MP" "$W/ra" >"$r.out" 2>&1
check "directories above the mount list it: ls -a, find (no loop), ls /, a real parent missing the mount's name, os.listdir, os.walk" \
    diff - "$r.out" <<EOF
['.', '..', 'm'] ['$MP/hello.txt']
True True
['other', 'sub', 'm2', '$W/ra/sub/m2/far.txt']
['m'] ['$W/ra/sub/m2']
['.', '..', 'm']
EOF
rm -rf "$W/ra" "$W/ra-back"
# glibc's remove() calls its own unlink and rmdir, out of our reach: bzip2, bunzip2 -f and
# zstd --rm remove their input with it; and a real file under the mount's path must not
# be what it removes.
t "bzip2, bunzip2 -f, zstd --rm, remove() of a file and of a directory" 'cp lines.txt r.txt; bzip2 r.txt; ls r.txt*
bunzip2 -f r.txt.bz2; cmp r.txt lines.txt && echo same; zstd -q --rm r.txt; ls r.txt*; zstd -q -d --rm r.txt.zst
cmp r.txt lines.txt && echo same2; mkdir rdir
"$PY" -c "import ctypes; l = ctypes.CDLL(None); print(l.remove(b\"r.txt\"), l.remove(b\"rdir\"), l.remove(b\"nope\"))"
test -e r.txt || test -e rdir || echo gone'
r=$W/remove-shadow
mkdir -p "$W/shadow" "$W/shadow-back" && echo real >"$W/shadow/f" && echo mounted >"$W/shadow-back/f"
shim_env "$MOUNTS;$W/shadow=file://$W/shadow-back" "$PY" -c 'import ctypes, sys; print(ctypes.CDLL(None).remove(sys.argv[1].encode()))' "$W/shadow/f" >"$r.out" 2>&1
check "remove() of a mounted path removes the mounted file, not the real one under the same path" \
    sh -c "grep -qx 0 '$r.out' && test ! -e '$W/shadow-back/f' && grep -qx real '$W/shadow/f'"
rm -rf "$W/shadow" "$W/shadow-back"
t "fallocate -l, posix_fallocate (glibc cannot fall back to writing zeros on our descriptors)" 'fallocate -l 3M fa; stat -c %s fa
cmp -n 3145728 fa /dev/zero && echo zeros; "$PY" -c "open(\"fa\", \"r+b\").write(b\"hi\")"; head -c 2 fa; echo; fallocate -n -l 8M fa; stat -c %s fa
"$PY" -c "import os; fd = os.open(\"fb\", os.O_CREAT | os.O_WRONLY, 0o644); os.write(fd, b\"x\"); os.posix_fallocate(fd, 0, 100000); os.close(fd); print(os.stat(\"fb\").st_size, open(\"fb\", \"rb\").read(2))"
rm fa fb'
t "programs kept in the directory run: a binary, a script, by PATH, from python's subprocess, a script without #! through execvp (sh)" 'mkdir bin; cp "$(command -v env)" bin/e; chmod 755 bin/e; bin/e echo binary
printf "#!/bin/sh\necho script \$1\n" >bin/s; chmod 755 bin/s; bin/s x; PATH="$PWD/bin:$PATH" s y
"$PY" -c "import subprocess; print(subprocess.run([\"bin/e\", \"echo\", \"spawned\"]).returncode)"
printf "echo no interpreter line \$1\n" >bin/n; chmod 755 bin/n; env bin/n x; PATH="$PWD/bin:$PATH" env n y; rm -r bin'
t "python: os.lockf (glibc's lockf64), os.mknod of a plain file, of one in a missing directory" '"$PY" -c "
import os
fd = os.open(\"lk\", os.O_RDWR | os.O_CREAT, 0o644)
os.lockf(fd, os.F_LOCK, 0); os.lockf(fd, os.F_TEST, 0); os.lockf(fd, os.F_ULOCK, 0); os.close(fd)
os.mknod(\"mk\", 0o600); print(oct(os.stat(\"mk\").st_mode))
try: os.mknod(\"nodir/mk\")
except OSError as e: print(e.strerror)
os.unlink(\"lk\"); os.unlink(\"mk\")"'
t "tail -f follows a file other processes append to (>>), until they end" 'echo line0 >tf.log
( for i in 1 2 3 4; do echo line$i >>tf.log; sleep 0.2; done ) & tail -s 0.1 --pid=$! -n 5 -f tf.log 2>/dev/null; rm tf.log'
t "a python loop reading lines at the end of a file other processes append to" 'echo line0 >pf.log
( for i in 1 2 3; do sleep 0.2; echo line$i >>pf.log; done ) & "$PY" -c "
import time
f = open(\"pf.log\"); got = []; t = time.time()
while len(got) < 4 and time.time() - t < 20:
    l = f.readline()
    if l: got.append(l.strip())
    else: time.sleep(0.05)
print(got)"; wait; rm pf.log'
t "syncfs on one descriptor makes every file this process writes on the store visible to another process" '"$PY" -c "
import ctypes, os, subprocess
a = open(\"sa\", \"wb\"); b = open(\"sb\", \"wb\"); a.write(b\"one\"); b.write(b\"two\"); a.flush(); b.flush()
print(ctypes.CDLL(None).syncfs(a.fileno()), subprocess.run([\"cat\", \"sa\", \"sb\"], capture_output=True).stdout)
a.close(); b.close(); os.unlink(\"sa\"); os.unlink(\"sb\")"'
t "truncate, utime and chmod by name of a file this process has open for writing (new and existing)" '"$PY" -c "
import os
f = open(\"nw\", \"wb\"); f.write(b\"x\"); f.flush()
os.utime(\"nw\", (1000000000, 1000000000)); os.truncate(\"nw\", 5); f.write(b\"y\"); f.close()
st = os.stat(\"nw\"); print(st.st_size, st.st_mtime > 1.5e9, open(\"nw\", \"rb\").read())
open(\"ex\", \"wb\").write(b\"0123456789\")
f = open(\"ex\", \"r+b\"); f.write(b\"ab\"); f.flush()
os.chmod(\"ex\", 0o600); os.truncate(\"ex\", 4); print(os.stat(\"ex\").st_size)
os.utime(\"ex\", (1000000000, 1000000000)); f.close()
st = os.stat(\"ex\"); print(st.st_size, int(st.st_mtime), oct(st.st_mode & 0o777), open(\"ex\", \"rb\").read())
os.unlink(\"nw\"); os.unlink(\"ex\")"'
t "sort -T with its temporary files in the mount" 'mkdir st; seq 1 200000 | sort -R --random-source=big.bin | sort -n -S 64K -T "$D/st" | sha256sum
ls -A st | wc -l; rmdir st' "write.count>0"
t "tar rf and tar uf (appends to an archive in the mount)" 'tar cf tr.tar --sort=name sub/a; echo appended >tnew.txt; tar rf tr.tar tnew.txt
echo more >>tnew.txt; touch -d @$(( $(date +%s) + 100 )) tnew.txt; tar uf tr.tar tnew.txt sub/a; tar tf tr.tar; tar xOf tr.tar tnew.txt
rm tr.tar tnew.txt' "write.count>0"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    t "numpy: save, load, mmap_mode r and r+ (MAP_SHARED write), np.memmap w+" '/usr/bin/python3 "$HERE/py_programs.py" numpy' \
        "write.count>0"
else
    fail "numpy is installed for /usr/bin/python3 (python3-numpy: tests/install-deps.sh)"
fi
