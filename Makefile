# s3shim - build, test, install. `make help` lists the targets.
#
# One tree of objects per build flavour: build/ (release), build/asan (ASan+UBSan),
# build/tsan (ThreadSanitizer). The shim is compiled without _FILE_OFFSET_BITS and
# _FORTIFY_SOURCE so that each 64-bit and checking alias can be defined as its own symbol.

SHELL   := /bin/bash
CC      ?= gcc
PREFIX  ?= /usr/local
BUILD   ?= build
SAN     ?=

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_COMMON := -std=gnu11 -g -fPIC -fvisibility=hidden -D_GNU_SOURCE -U_FORTIFY_SOURCE \
                 -Wp,-U_FORTIFY_SOURCE -U_FILE_OFFSET_BITS $(WARN)
ifeq ($(SAN),asan)
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else ifeq ($(SAN),tsan)
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=thread
else
  OPT := -O2
endif
CFLAGS  ?=
ALL_CFLAGS := $(CFLAGS_COMMON) $(OPT) $(CFLAGS)
LDLIBS_CORE := -ldl -lcrypto -lexpat -luring -lisal -lpthread -lm
# the library opens libcurl and libcrypto itself when they are first needed (curl_api.h,
# crypto_api.h): a program that never uses S3 maps neither
LDLIBS_SHIM := -ldl -lexpat -luring -lisal -lpthread -lm

CORE_SRC := $(wildcard core/*.c core/*/*.c)
SHIM_SRC := $(wildcard shim/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
SHIM_OBJ := $(SHIM_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS  := $(wildcard core/*.h core/*/*.h shim/*.h include/*.h tools/*.h)
TOOL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/*.c))

LIB  := $(BUILD)/libs3shim.so
CORE := $(BUILD)/libs3shim-core.a
TOOL := $(BUILD)/s3shim
MAN  := $(BUILD)/s3shim.1
VERSION := $(shell sed -n 's/.*S3SHIM_VERSION "\(.*\)"/\1/p' include/s3shim.h)

.PHONY: all help man deps test test-full test-lane-release test-lane-san test-unit test-sys test-docs test-integration test-stdstream test-oplog test-direct test-block test-block-battery test-s3 test-endpoints test-faultproxy test-tsan \
        test-s3rig bench bench-oplog bench-replay bench-passthrough bench-route-scan bench-s3 bench-programs bench-first bench-endpoints bench-direct bench-stdstream bench-block bench-block-cpu bench-block-small-cpu bench-block-growth bench-block-sqlite bench-block-append bench-block-startup \
        install clean demo

all: $(LIB) $(TOOL)

help:
	@echo "make              build $(LIB) and $(TOOL)"
	@echo "make deps         install the Debian packages needed to build and test"
	@echo "make test         every suite (unit, real programs on file://, direct://, block:// and S3, ...) on the release build, most under ASan+UBSan, TSan stress tests"
	@echo "make test-full    the same, every suite under ASan too and at full scale (about twice as long)"
	@echo "make demo         the main job: a real program through the shim, with stats"
	@echo "make bench        benchmarks (figures go to bench/RESULTS.md by hand)"
	@echo "make test-docs    docs/settings.md against the build's settings, README's size, the man page"
	@echo "make man          $(MAN) from docs/ (go-md2man)"
	@echo "make install      PREFIX=$(PREFIX)"

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(CORE_OBJ) $(SHIM_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,--no-undefined -Wl,-soname,libs3shim.so -o $@ $^ $(LDLIBS_SHIM)

$(CORE): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TOOL): $(TOOL_OBJ) $(CORE)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_CORE) -lblkid

# The man page: docs/s3shim.1.md with docs/settings.md put in (docs/mkman.sh), so the
# settings are written once.
man: $(MAN)

$(MAN): docs/s3shim.1.md docs/settings.md docs/mkman.sh
	@mkdir -p $(dir $@)
	set -o pipefail; docs/mkman.sh $(VERSION) | go-md2man > $@.tmp && mv $@.tmp $@

# --- tests ----------------------------------------------------------------------------

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRC := $(wildcard tests/helpers/*.c)
HELPER_BIN := $(HELPER_SRC:tests/helpers/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE) shim/fdtable.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=default -o $@ $< $(CORE) -lcmocka $(LDLIBS_CORE)

# Helpers are ordinary programs that the integration tests run under the shim.
HELPER_LIBS_no_uring := -lseccomp
HELPER_LIBS_uring_rw := -luring
$(BUILD)/tests/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -lpthread $(HELPER_LIBS_$*)

# Run a suite, keep its closing line and its seconds for `make test`'s total. Alone its
# output streams; in `make test`'s lanes (GROUPED set) a suite's output is written in one
# piece when it ends, so that two lanes never interleave their lines.
define run_suite
	@set -o pipefail; mkdir -p $(BUILD)/logs; log=$(BUILD)/logs/$(subst /,-,$(2)).log; t0=$$(date +%s); \
	 if [ -n "$(GROUPED)" ]; then \
	   echo "== $(2): started $$(date +%T)"; $(1) > $$log 2>&1; rc=$$?; dt=$$(( $$(date +%s) - t0 )); \
	   { flock 9; echo "== $(2): $$dt s"; cat $$log; } 9>> "$(GROUPED)"; \
	 else $(1) 2>&1 | tee $$log; rc=$$?; dt=$$(( $$(date +%s) - t0 )); fi; \
	 if [ -n "$(SUMMARY_FILE)" ]; then \
	   printf '%s %s [%ss]\n' "$(2)" "$$(grep -E '^[0-9]+ passed, [0-9]+ failed' $$log | tail -1)" "$$dt" \
	     >> "$(SUMMARY_FILE)"; fi; \
	 exit $$rc
endef

# FULL=1 (make test-full): every suite under every build, at full scale. Without it, so
# that make test fits in 25 minutes on 2 cores, a sanitizer build skips the suites run
# through $(san_all) and the op log and endpoint targets (it keeps the main paths of
# every backend; the release build runs them all), and the scale cases are smaller:
# fewer SIGKILLed writers and power-loss states, no S3 battery through faulty endpoints.
FULL ?=
SAN_ALL := $(if $(FULL),1,$(if $(SAN),,1))
san_all = $(if $(SAN_ALL),$(1))

test-unit: $(UNIT_BIN)
	$(call run_suite,tests/run-unit.sh $(UNIT_BIN),unit$(if $(SAN),/$(SAN)))

# The engine's system calls go through core/sys.h, never through the shim's own wrappers.
test-sys: $(LIB)
	$(call run_suite,BUILD=$(BUILD) tests/check-sys.sh,sys$(if $(SAN),/$(SAN)))

# docs/settings.md against `s3shim config --settings` (names, defaults), README's size,
# the man page.
test-docs: $(TOOL)
	$(call run_suite,BUILD=$(BUILD) tests/docs/settings.sh,docs)

test-integration: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/integration/run.sh,integration$(if $(SAN),/$(SAN)))

# Shim files on fds 0 and 1 (redirections, dd if=/of=): the program's own calls straight
# to the file, the pipe for what bypasses the shim, in order; on file://, direct:// and S3.
test-stdstream: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/stdstream/run.sh,stdstream$(if $(SAN),/$(SAN)))

# The op log (S3SHIM_OPLOG): losslessness over threads, fork, exec, _exit and SIGKILL,
# `s3shim oplog` on good and bad logs, `s3shim ab`, `s3shim replay` on direct:// and on S3 (a
# Swift of its own), `oplog diff`, `--fio`, `ab --replay` (about 1 minute).
test-oplog: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/oplog/run.sh,oplog$(if $(SAN),/$(SAN)))

# direct:// on real filesystems and loop devices (root for the loop devices), then the
# integration battery again on a direct:// mount.
test-direct: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/direct/run.sh,direct$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) IT_SCHEME=direct tests/integration/run.sh,integration-direct$(if $(SAN),/$(SAN))))

# block:// (an object store on a raw device): format, check, data, namespace, bit flips,
# ENOSPC, several processes, SIGKILL (root for the loop devices; a plain file without).
# Then, in the release build (make test), the integration battery on a block:// mount
# (test-block-battery; it skips, saying why, what block:// does not keep: links, permission
# checks, access and birth times, see docs/block-format.md).
# Writers SIGKILLed and power-loss states tried (tests/block/run.sh): release 100 and
# 5,250 (FULL: 200 and 10,500); under a sanitizer 20 and 700 (FULL: 50 and 2,100), enough
# to catch memory errors on those paths.
BLOCK_SCALE = $(if $(SAN),$(if $(FULL),BLOCK_TEST_KILLS=50 BLOCK_TEST_STATES=300,BLOCK_TEST_KILLS=20 BLOCK_TEST_STATES=100),$(if $(FULL),,BLOCK_TEST_KILLS=100 BLOCK_TEST_STATES=750))
test-block: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) $(BLOCK_SCALE) tests/block/run.sh,block$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/discard.sh,block-discard$(if $(SAN),/$(SAN))))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/extents.sh,block-extents$(if $(SAN),/$(SAN))))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/moved.sh,block-moved$(if $(SAN),/$(SAN))))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/shared.sh,block-shared$(if $(SAN),/$(SAN)))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/coherent.sh,block-coherent$(if $(SAN),/$(SAN)))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/batch.sh,block-batch$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/counter.sh,block-counter$(if $(SAN),/$(SAN))))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/engine.sh,block-engine$(if $(SAN),/$(SAN))))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/unlinked.sh,block-unlinked$(if $(SAN),/$(SAN))))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) $(if $(SAN),BLOCK_KILLS=40) tests/block/killed.sh,block-killed$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/block/shrink.sh,block-shrink$(if $(SAN),/$(SAN))))

test-block-battery: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) IT_SCHEME=block tests/integration/run.sh,integration-block$(if $(SAN),/$(SAN)))

# Real binaries on a real S3 server: the rig's Swift unless AWS_ENDPOINT_URL is set.
test-s3: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/run.sh,s3$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/faults.sh,s3-faults$(if $(SAN),/$(SAN))))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/lite.sh,s3-lite$(if $(SAN),/$(SAN))))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/recv.sh,s3-recv$(if $(SAN),/$(SAN))))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/staging.sh,s3-staging$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/coherence.sh,s3-coherence$(if $(SAN),/$(SAN))))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/exit.sh,s3-exit$(if $(SAN),/$(SAN)))
	$(call san_all,$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/defer.sh,s3-defer$(if $(SAN),/$(SAN))))
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) tests/s3/names.sh,s3-names$(if $(SAN),/$(SAN)))

# Several endpoints of one Swift cluster, healthy, faulty and dead (tests/s3rig/faultproxy.py
# in front). FULL=1 in the release build adds the S3 battery through faulty endpoints.
test-endpoints: all $(HELPER_BIN)
	$(call run_suite,BUILD=$(BUILD) SAN=$(SAN) $(if $(and $(FULL),$(if $(SAN),,1)),,S3TEST_ENDPOINTS_BATTERY=0) tests/s3/endpoints.sh,endpoints$(if $(SAN),/$(SAN)))

# The fault and latency proxy itself.
test-faultproxy:
	$(call run_suite,tests/s3rig/faultproxy-selftest.sh,faultproxy)

# The whole suite, in two lanes at once: the release build's suites, and the sanitizer
# builds' (ASan+UBSan, then the TSan stress tests). The suites wait on servers, timeouts
# and disks about half of the time, so two lanes on 2 cores take far less than one after
# the other. A suite's output is printed whole when it ends; every suite's closing
# "N passed, M failed" line and its seconds are added up at the end, also after a failure
# (a lane stops at its first failing suite, the other lane goes on). `make test-full`:
# the same with FULL=1 (every suite under ASan too, full scale; about twice as long).
SUMMARY := build/test-summary.txt
RELEASE_SUITES := test-unit test-sys test-docs test-integration test-stdstream test-oplog test-direct test-block \
                  test-block-battery test-s3 test-endpoints
SAN_SUITES := test-unit test-sys test-integration test-stdstream test-direct test-block test-s3 \
              $(if $(FULL),test-oplog test-endpoints)
LANE_VARS = SUMMARY_FILE=$(SUMMARY_FILE) GROUPED=$(GROUPED) FULL=$(FULL)
test:
	@mkdir -p build && : > $(SUMMARY) && : > $(SUMMARY).lock
	@$(MAKE) --no-print-directory -j2 test-lane-release test-lane-san SUMMARY_FILE=$(abspath $(SUMMARY)) \
	   GROUPED=$(abspath $(SUMMARY)).lock; rc=$$?; tests/summary.sh $(SUMMARY) && exit $$rc

test-full:
	@$(MAKE) --no-print-directory test FULL=1

# The lanes run their suites one after the other (MAKEFLAGS= leaves make -j2's job server).
# The fault proxy's self-test runs in the sanitizer lane, which is the shorter one.
test-lane-release:
	@MAKEFLAGS= $(MAKE) --no-print-directory all $(RELEASE_SUITES) $(LANE_VARS)
# The sanitizer lane's test servers take ports 1000 above the release lane's
# (S3RIG_PORT_OFFSET, tests/s3rig/lib.sh).
test-lane-san: export S3RIG_PORT_OFFSET = 1000
test-lane-san:
	@MAKEFLAGS= $(MAKE) --no-print-directory test-faultproxy $(LANE_VARS)
	@MAKEFLAGS= $(MAKE) --no-print-directory BUILD=build/asan SAN=asan all $(SAN_SUITES) $(LANE_VARS)
	@MAKEFLAGS= $(MAKE) --no-print-directory BUILD=build/tsan SAN=tsan test-tsan $(LANE_VARS)

# The S3 test servers themselves (Swift with s3api, nginx, the AWS CLI against them).
test-s3rig:
	$(call run_suite,tests/s3rig/selftest.sh,s3rig)

test-tsan: $(TOOL) $(BUILD)/tests/tsan_stress $(BUILD)/tests/tsan_s3 $(BUILD)/tests/tsan_stdstream $(BUILD)/tests/test_balance
	$(call run_suite,BUILD=$(BUILD) tests/tsan/run.sh,tsan)
	$(call run_suite,BUILD=$(BUILD) tests/tsan/mounted.sh direct,tsan-direct)
	$(call run_suite,BUILD=$(BUILD) tests/tsan/mounted.sh block,tsan-block)
	$(call san_all,$(call run_suite,BUILD=$(BUILD) tests/oplog/tsan.sh,tsan-oplog))

$(BUILD)/tests/tsan_stress: tests/tsan/stress.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -ls3shim -lpthread

$(BUILD)/tests/tsan_stdstream: tests/tsan/stdstream.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -ls3shim -lpthread

$(BUILD)/tests/tsan_s3: tests/tsan/s3_stress.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -ls3shim -lpthread

# --- benchmarks and demo -------------------------------------------------------------

bench: bench-passthrough bench-route-scan bench-s3 bench-programs bench-endpoints bench-direct

# Several endpoints with 5/10/50/100 ms latency: rr, least, sewt, hedging (about 4 minutes).
bench-endpoints: all $(BUILD)/bench/mix $(BUILD)/bench/select
	@BUILD=$(BUILD) bench/endpoints/run.sh

$(BUILD)/bench/mix: bench/endpoints/mix.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -lpthread

$(BUILD)/bench/select: bench/endpoints/select.c core/s3/balance.c core/s3/balance.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ bench/endpoints/select.c core/s3/balance.c -lpthread

# S3 against curl, aws, s3fs and rclone on a local Swift and nginx (about 5 minutes).
bench-s3: all
	@BUILD=$(BUILD) bench/s3/run.sh

# Everyday programs on S3 (zip, sqlite3, a 4 KiB patch, cp/dd) against s3fs and against
# "aws s3 cp, then run locally", on a local Swift (issue 10; about 15 minutes).
bench-programs: all
	@BUILD=$(BUILD) bench/s3/programs.sh

# A new process's first S3 request: cat, head, stat, ls of a 1 KiB object on nginx
# against curl, as whole processes (about a minute).
bench-first: all
	@BUILD=$(BUILD) bench/s3/first.sh

# Shim files on fds 0 and 1 (dd if=/of=, cat < f, cmd > f) against the same program given
# the path, and fio, on file://, direct://, a loop device and S3 (bench/README.md).
bench-stdstream: all
	@BUILD=$(BUILD) bench/stdstream/run.sh

# direct:// against fio (io_uring, O_DIRECT) on a 2 GiB file and a loop device (about 2 minutes).
bench-direct: all
	@BUILD=$(BUILD) bench/direct/run.sh

# block:// against ext4, XFS (small files) and fio (large sequential, 4 KiB random reads)
# on one loop device (root; about 3 minutes).
bench-block: all
	@BUILD=$(BUILD) bench/block/run.sh

# block:// CPU per GiB moved against fio (perf stat, two sizes: start-up costs taken out;
# root; about 2 minutes with ROUNDS=3).
bench-block-cpu: all
	@BUILD=$(BUILD) bench/block/cpu.sh

# block:// small files: CPU time (task-clock) and metadata reads against ext4 (about 1 min).
bench-block-small-cpu: all
	@BUILD=$(BUILD) bench/block/small_cpu.sh

# block:// creates as the store fills: 10 batches of 20,000 files in one store (about 2 min).
bench-block-growth: all
	@BUILD=$(BUILD) bench/block/growth.sh

# sqlite3 on block:// against ext4: one process (rollback journal, WAL), and a WAL
# database one process writes while two others read it (root; about 1 minute).
bench-block-sqlite: all
	@BUILD=$(BUILD) bench/block/sqlite.sh

# block:// appends: a log written a line per open (python, bash >>), and processes
# appending at once (lines kept), against ext4 (about 20 s).
bench-block-append: all
	@BUILD=$(BUILD) bench/block/append.sh

# block:// start-up: a store of 1M objects, a new process's cost and memory (about 30 s).
bench-block-startup: all $(BUILD)/blk_populate
	@BUILD=$(BUILD) bench/block/startup.sh

$(BUILD)/blk_populate: bench/block/populate.c $(CORE) $(HEADERS)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CORE) $(LDLIBS_CORE)

# What the op log costs: instructions per logged pread, CPU with and without it (1 minute).
bench-oplog: all $(HELPER_BIN)
	@BUILD=$(BUILD) bench/oplog.sh

# s3shim replay --asap against fio --read_iolog of the same trace, and lateness at speed 1 (1 minute).
bench-replay: all
	@BUILD=$(BUILD) bench/replay.sh

bench-passthrough: all $(BUILD)/bench/passthrough
	@BUILD=$(BUILD) bench/passthrough.sh

$(BUILD)/bench/passthrough: bench/passthrough.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<

# The path test alone, in each CPU form (bench/README.md).
bench-route-scan: $(BUILD)/bench/route_scan
	$(BUILD)/bench/route_scan
	$(BUILD)/bench/route_scan /etc/ld.so.cache
	$(BUILD)/bench/route_scan /usr/lib/x86_64-linux-gnu/libfoo-long-name.so.1.2.3/and/more/components/here/x.txt

$(BUILD)/bench/route_scan: bench/route_scan.c shim/route_scan.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<

demo: all
	@BUILD=$(BUILD) examples/demo.sh

deps:
	tests/install-deps.sh

# --- install ---------------------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
	           $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libs3shim.so
	install -m 0755 $(TOOL) $(DESTDIR)$(PREFIX)/bin/s3shim
	install -m 0644 include/s3shim.h $(DESTDIR)$(PREFIX)/include/s3shim.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|' \
	    s3shim.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/s3shim.pc
	@if command -v go-md2man >/dev/null; then \
	   $(MAKE) -s --no-print-directory man && install -d $(DESTDIR)$(PREFIX)/share/man/man1 && \
	   install -m 0644 $(MAN) $(DESTDIR)$(PREFIX)/share/man/man1/s3shim.1; \
	 else echo "install: go-md2man not found (make deps installs it): man page not installed"; fi

clean:
	rm -rf build
