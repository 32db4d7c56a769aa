# dsys — one non-recursive Makefile.
#
# Everything is found by pattern, so adding a module or a program needs no
# edit here:
#   lib/LAYER/*.c            -> build/libdsys.a (lib/ is one folder per layer)
#   lib/LAYER/*.proto        -> build/gen/lib/LAYER/*.pb-c.[ch] (protoc-c), into
#                               libdsys.a; included as "LAYER/NAME.pb-c.h"
#   bin/dsys-NAME.c          -> build/bin/dsys-NAME
#   bin/dsys-NAME/*.c        -> build/bin/dsys-NAME (a program in several files)
#   tests/unit/test_*.c      -> build/tests/test_* (each a C unit test, TAP output)
#   tests/fuzz/fuzz_*.c      -> build/fuzz/fuzz_* (libFuzzer targets, clang)
#   tests/bench/*.c          -> build/bench/* (helper servers for make bench)
#   tests/*.bats             run by make test
#   tests/bench/bench-*.sh   run in order by make bench
#
# Targets: all test check fuzz bench demo install uninstall clean deps.
# V=1 shows the commands.  BUILD=build-asan is what make check uses.
#
# Packages.  A bare Debian 12 machine has none of the libraries, so the
# compiler flags cannot be read when this file is parsed.  They live in
# $(BUILD)/config.mk, which make remakes before anything compiles: its rule
# installs the build packages (tests/deps.sh), then asks pkg-config, and
# GNU make restarts with the flags in place.  Build packages and the
# packages of tests, the demo and benchmarks are told apart: `make` and
# `make install` install only DEB_BUILD; `make test`, `make check`, `make
# demo` and `make bench` add what they run.

SHELL     := /bin/bash
PREFIX    ?= /usr/local
BUILD     ?= build
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CC        ?= cc
PKGS      := libuv hiredis libcjson libnghttp2 libprotobuf-c zlib libbrotlienc libbrotlidec
# Headers only: libcurl is loaded at run time by lib/io/curl_dl.c (dlopen),
# so its thirty-odd libraries cost nothing to the programs that do not use it.
PKGS_HDR  := libcurl
CONFIG    := $(BUILD)/config.mk
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -Wall -Wextra -Werror -Wno-unused-parameter
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN) -Ilib -I$(BUILD)/gen/lib $(PKG_CFLAGS) -MMD -MP
# Libraries whose Debian -dev package (in DEB_BUILD) ships a static
# archive are linked from it: every start of a program then maps and
# relocates two to five files fewer, which is most of what a short-lived
# run such as `dsys-trace exec` costs (issue 18).  libcjson has no archive;
# libcurl is loaded with dlopen where it is used; libc stays shared.
STATIC_LIBS := uv hiredis nghttp2 protobuf-c z brotlienc brotlidec
LDLIBS     = -Wl,-Bstatic -luv_a -lhiredis -lnghttp2 -lprotobuf-c -lz -lbrotlienc -lbrotlidec -lbrotlicommon \
             -Wl,-Bdynamic $(filter-out $(STATIC_LIBS:%=-l%),$(PKG_LIBS)) -lm -lpthread
VERSION   := $(shell cat VERSION 2>/dev/null || echo 0.1.0)
ALL_CFLAGS += -DDSYS_VERSION='"$(VERSION)"'

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC   := $(wildcard lib/*/*.c)
LIB_HDR   := $(wildcard lib/*/*.h)
# Protocol Buffers messages: each .proto beside the code that uses it,
# compiled by protoc-c; every object waits for the generated headers.
PROTO_SRC := $(wildcard lib/*/*.proto)
PROTO_C   := $(PROTO_SRC:lib/%.proto=$(BUILD)/gen/lib/%.pb-c.c)
PROTO_H   := $(PROTO_C:.c=.h)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(PROTO_C:%.c=%.o)
LIB_A     := $(BUILD)/libdsys.a

PROG_SINGLE := $(patsubst bin/%.c,%,$(wildcard bin/dsys-*.c))
PROG_DIRS   := $(patsubst bin/%/,%,$(sort $(dir $(wildcard bin/dsys-*/*.c))))
PROGS       := $(PROG_SINGLE) $(PROG_DIRS)
PROG_BIN    := $(PROGS:%=$(BUILD)/bin/%)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELP := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
UNIT_HELP_OBJ := $(UNIT_HELP:%.c=$(BUILD)/%.o)

BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

# tests/faultfs.c: an LD_PRELOAD shim that fails or slows a program's disk
# for the tests (tests/raft_disk.bats); plain flags, no sanitizer.
FAULTFS := $(BUILD)/tests/faultfs.so

FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all test check fuzz fuzz-run bench demo install uninstall clean deps units bats soak mutants \
        deps-build deps-test deps-demo deps-bench layers
.DEFAULT_GOAL := all
# Objects of tests and bench programs are built by a chain of pattern rules:
# keep them, so a second make rebuilds nothing.
.SECONDARY:

all: $(LIB_A) $(PROG_BIN) $(UNIT_BIN) $(BENCH_BIN) $(FAULTFS)

# ---------------------------------------------------------------- config
# Goals that need no compiler flags do not install the build packages.
NO_CONFIG_GOALS := clean deps deps-build deps-test deps-demo deps-bench uninstall layers
ifneq ($(filter-out $(NO_CONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
include $(CONFIG)
endif

$(CONFIG): Makefile tests/deps.sh
	$(Q)./tests/deps.sh --quiet $(DEB_BUILD)
	@mkdir -p $(@D)
	$(Q)pkg-config --print-errors --exists $(PKGS) $(PKGS_HDR) || { \
	  echo "make: pkg-config cannot find $(PKGS) $(PKGS_HDR) although their packages are installed" >&2; exit 2; }
	$(Q){ echo "# made by make from pkg-config; remade when the Makefile changes"; \
	  echo "PKG_CFLAGS := $$(pkg-config --cflags $(PKGS) $(PKGS_HDR))"; \
	  echo "PKG_LIBS := $$(pkg-config --libs $(PKGS))"; } > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/lib/%.pb-c.c $(BUILD)/gen/lib/%.pb-c.h: lib/%.proto
	@mkdir -p $(BUILD)/gen/lib
	@$(if $(Q),echo "  PROTOC  $<")
	$(Q)protoc-c --proto_path=lib --c_out=$(BUILD)/gen/lib $<

$(BUILD)/gen/lib/%.pb-c.o: $(BUILD)/gen/lib/%.pb-c.c
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar qcs $@ $^   # q, not r: counter/redis.o and store/redis.o share a name

# A program is its bin/ file (or folder) linked against libdsys.  Its
# objects go under $(BUILD)/obj/, so a folder's objects (bin/dsys-x/*.o)
# cannot collide with the program file $(BUILD)/bin/dsys-x.
$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

define PROG_template
$(BUILD)/bin/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bin/$(1).c bin/$(1)/*.c)) $(LIB_A)
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(ALL_CFLAGS) -o $$@ $$(filter %.o,$$^) $$(LIB_A) $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call PROG_template,$(p))))

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(UNIT_HELP_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(UNIT_HELP_OBJ) $(LIB_A) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(LIB_A)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(FAULTFS): tests/faultfs.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -O2 -g -Wall -Wextra -fPIC -shared -o $@ $< -ldl

# ---------------------------------------------------------------- tests
# make test: unit tests and bats files, all as TAP through prove, so the
# last lines are prove's summary and "Result: PASS/FAIL".  The fuzz smoke
# run (FUZZ_SECONDS per target on its corpus) comes first, so the summary ends it.
TEST_ENV = DSYS_SAN="$(SAN)" DSYS_BIN=$(abspath $(BUILD)/bin) DSYS_BUILD=$(abspath $(BUILD)) PATH=$(abspath $(BUILD)/bin):$$PATH
# prove starts the files in this order, PROVE_JOBS at a time: the longest
# first (as measured by prove --timer), so that no long file is left to run
# alone at the end while the other slots sit idle.
BATS_SLOW := tests/release.bats tests/conformance.bats tests/raft_node.bats \
  tests/raft_faults.bats tests/valgrind.bats tests/serve_io.bats tests/serve.bats \
  tests/valgrind_alloc.bats tests/raft_memory.bats tests/raft.bats tests/dsys-bench.bats
BATS_FILES ?= $(BATS_SLOW) $(filter-out $(BATS_SLOW),$(wildcard tests/*.bats))
FUZZ_SECONDS ?= 10

# The build runs JOBS compiles at a time even when make test is called
# without -j (as CI and the README do).
test: deps-test
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) all
	$(Q)$(MAKE) --no-print-directory fuzz-run
	$(Q)$(TEST_ENV) prove -f -o --timer -j$(or $(PROVE_JOBS),3) --exec tests/run-one.sh \
	  $(BATS_FILES) $(UNIT_BIN)

# The include directions between lib/'s layers (also a bats file of make test).
layers:
	$(Q)./tests/layers.sh

units: all
	$(Q)$(TEST_ENV) prove -f $(UNIT_BIN)

bats: all
	$(Q)$(TEST_ENV) bats $(BATS_FILES)

# make check: the whole suite built with ASan and UBSan in build-asan/.
check: deps-test
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all' \
	  SKIP_FUZZ=1 test

# ---------------------------------------------------------------- fuzz
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -I$(BUILD)/gen/lib $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
# lib/ is compiled once with the fuzzer's instrumentation, for all targets.
FUZZ_LIB_OBJ := $(LIB_SRC:lib/%.c=$(BUILD)/fuzz/obj/%.o) $(PROTO_C:$(BUILD)/gen/lib/%.c=$(BUILD)/fuzz/obj/%.o)
$(BUILD)/fuzz/obj/%.o: lib/%.c $(LIB_HDR) | $(PROTO_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)clang $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_CFLAGS)) -DDSYS_VERSION='"$(VERSION)"' -c -o $@ $<
$(BUILD)/fuzz/obj/%.pb-c.o: $(BUILD)/gen/lib/%.pb-c.c $(PROTO_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)clang $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_CFLAGS)) -DDSYS_VERSION='"$(VERSION)"' -c -o $@ $<
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -DDSYS_VERSION='"$(VERSION)"' -o $@ $< $(FUZZ_LIB_OBJ) $(PKG_LIBS) -lm -lpthread

fuzz: $(FUZZ_BIN)

# Each target runs FUZZ_SECONDS on its corpus (tests/fuzz/corpus/NAME/);
# new inputs go to a scratch folder, so the tree is never written.  The
# targets run FUZZ_JOBS at a time (each is one process on one core).
fuzz-run:
ifneq ($(SKIP_FUZZ),1)
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) fuzz
	$(Q)printf '%s\n' $(FUZZ_BIN) | xargs -P$(or $(FUZZ_JOBS),$(JOBS)) -n1 sh -c \
	  'n=$$(basename "$$1"); scratch=$$(mktemp -d); \
	   "$$1" -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 "$$scratch" tests/fuzz/corpus/$$n >"$$scratch.log" 2>&1 \
	     || { echo "fuzz: $$n failed:"; tail -50 "$$scratch.log"; rm -rf "$$scratch" "$$scratch.log"; exit 255; }; \
	   echo "fuzz: $$n for $(FUZZ_SECONDS)s: $$(tail -1 "$$scratch.log")"; rm -rf "$$scratch" "$$scratch.log"' sh
endif

# The Raft simulator beyond make test: `make soak` sweeps 200,000 seeds
# (SOAK_SEEDS) over every core, `make mutants` plants each bug of
# tests/mutants/ and reports which sweep catches it.
soak: deps-test all
	$(Q)$(TEST_ENV) bash tests/mutants/soak.sh

mutants: deps-test all
	$(Q)$(TEST_ENV) bash tests/mutants/run.sh

# ---------------------------------------------------------------- bench, demo
bench: deps-test deps-bench all
	$(Q)set -e; for s in tests/bench/bench-*.sh; do $(TEST_ENV) bash $$s; done

demo: deps-demo all
	$(Q)$(TEST_ENV) bash examples/demo.sh

# ---------------------------------------------------------------- deps
# The Debian packages each goal needs; tests/deps.sh installs only the
# missing ones (apt-get update first: a fresh machine has no package
# lists), with sudo when not root, and names any it cannot install.
# Every package a test, the demo or a benchmark runs is named here.
DEB_BUILD := pkg-config libuv1-dev libhiredis-dev libcjson-dev libcurl4-openssl-dev \
             libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libbrotli-dev
DEB_DEMO  := jq curl
DEB_TEST  := $(DEB_DEMO) clang libclang-rt-dev bats bats-assert bats-support \
             mandoc man-db socat redis-server redis-tools nginx-light \
             libhttp-parser-dev valgrind python3 procps iproute2 strace zsh util-linux \
             etcd-server etcd-client patch prometheus nghttp2-client protobuf-compiler \
             python3-grpcio python3-protobuf python3-etcd3 python3-brotli
DEB_BENCH := wrk nginx-light h2o python3 procps util-linux redis-tools

deps:
	$(Q)./tests/deps.sh $(DEB_BUILD) $(DEB_TEST) $(DEB_BENCH)
deps-build:
	$(Q)./tests/deps.sh --quiet $(DEB_BUILD)
deps-test:
	$(Q)./tests/deps.sh --quiet $(DEB_TEST)
deps-demo:
	$(Q)./tests/deps.sh --quiet $(DEB_DEMO)
deps-bench:
	$(Q)./tests/deps.sh --quiet $(DEB_BENCH)

# ---------------------------------------------------------------- install
MAN1 := $(wildcard man/man1/*.1)
MAN7 := $(wildcard man/man7/*.7)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 755 $(PROG_BIN) $(DESTDIR)$(PREFIX)/bin/
	$(if $(MAN1),install -m 644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/)
	$(if $(MAN7),install -m 644 $(MAN7) $(DESTDIR)$(PREFIX)/share/man/man7/)
	for f in completions/bash/*; do [ -f "$$f" ] && install -m 644 $$f $(DESTDIR)$(PREFIX)/share/bash-completion/completions/; done; true
	for f in completions/zsh/*; do [ -f "$$f" ] && install -m 644 $$f $(DESTDIR)$(PREFIX)/share/zsh/site-functions/; done; true

uninstall:
	rm -f $(PROGS:%=$(DESTDIR)$(PREFIX)/bin/%)
	rm -f $(MAN1:man/man1/%=$(DESTDIR)$(PREFIX)/share/man/man1/%) $(MAN7:man/man7/%=$(DESTDIR)$(PREFIX)/share/man/man7/%)
	rm -f $(patsubst completions/bash/%,$(DESTDIR)$(PREFIX)/share/bash-completion/completions/%,$(wildcard completions/bash/*))
	rm -f $(patsubst completions/zsh/%,$(DESTDIR)$(PREFIX)/share/zsh/site-functions/%,$(wildcard completions/zsh/*))

clean:
	rm -rf $(BUILD) build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
