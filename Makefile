# SPDX-License-Identifier: MIT
#
# vshm build.  Targets:
#   make                 libvshm.a, libvshm.so (version script), tools
#   make check           build and run every test (TAP), "N passed, N failed"
#   make bench           run the benchmarks; BENCH_JSON=path writes the figures
#   make fuzz-smoke      each libFuzzer target for FUZZ_SMOKE_SECONDS (270 s shared)
#   make fuzz            each target for FUZZ_SECONDS (600)
#   make demo            show vshm doing its job
# Knobs: O=dir (out-of-tree), V=1 (echo commands), CC=clang,
#        SANITIZE=address,undefined | SANITIZE=thread

VERSION   := 0.1.0
SOVERSION := 0

comma := ,
SANITIZE ?=
O ?= build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)))
CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
FUZZ_CC ?= clang
AR ?= ar

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wvla -Wformat=2 -Wno-unused-parameter
CFLAGS ?= -O2 -g
BASE_CFLAGS := -std=gnu11 -fPIC -D_GNU_SOURCE -Iinclude -Isrc $(WARN)
LDLIBS := -lpthread
# devices/ (blk) use liburing; scripts/deps.sh installs liburing-dev.
EXTRA_LDLIBS ?= -luring

ifneq ($(SANITIZE),)
BASE_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS)

LIB_SRCS   := $(sort $(wildcard src/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(O)/%.o)
DEV_SRCS   := $(sort $(wildcard devices/*.c drivers/*.c))
DEV_OBJS   := $(DEV_SRCS:%.c=$(O)/%.o)
CMD_SRCS   := $(sort $(wildcard cmd/*.c))
CMD_OBJS   := $(CMD_SRCS:%.c=$(O)/%.o)
TEST_SRCS  := $(sort $(wildcard tests/test_*.c))
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(O)/tests/%)
TOOL_SRCS  := $(sort $(wildcard tests/tool_*.c))
TOOL_BINS  := $(TOOL_SRCS:tests/%.c=$(O)/tests/%)
TEST_SCRIPTS := $(sort $(wildcard tests/test_*.sh))
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(O)/bench/%)
FUZZ_SRCS  := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRCS:fuzz/fuzz_%.c=%)
FUZZ_BINS  := $(FUZZ_NAMES:%=$(O)/fuzz/fuzz_%)

LIBA  := $(O)/libvshm.a
LIBSO := $(O)/libvshm.so.$(VERSION)
VSHM  := $(if $(CMD_SRCS),$(O)/vshm)

.PHONY: all lib check tests bench fuzz fuzz-smoke fuzz-build demo deps clean help
.DEFAULT_GOAL := all

all: lib $(VSHM)

lib: $(LIBA) $(LIBSO)

help:
	@sed -n '3,13p' Makefile | sed 's/^# \{0,1\}//'

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBA): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LIBSO): $(LIB_OBJS) src/libvshm.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libvshm.so.$(SOVERSION) \
		-Wl,--version-script=src/libvshm.map $(LDFLAGS) -o $@ $(LIB_OBJS) $(LDLIBS)
	$(Q)ln -sf libvshm.so.$(VERSION) $(O)/libvshm.so.$(SOVERSION)
	$(Q)ln -sf libvshm.so.$(VERSION) $(O)/libvshm.so

ifneq ($(CMD_SRCS),)
$(VSHM): $(CMD_OBJS) $(DEV_OBJS) $(LIBA)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CMD_OBJS) $(DEV_OBJS) $(LIBA) $(LDLIBS) $(EXTRA_LDLIBS)
endif

# Tests link the static library (internals are reachable through src/*.h).
$(O)/tests/%: tests/%.c $(DEV_OBJS) $(LIBA) tests/tap.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(DEV_OBJS) $(LIBA) $(LDLIBS) $(EXTRA_LDLIBS)

# Tests and tools include header-only helpers from tests/ (the ring harnesses).
$(TEST_BINS) $(TOOL_BINS): $(wildcard tests/*.h)

# Benchmarks link like tests: bench_blk drives the blk driver (drivers/) and io_uring.
# test_hub compiles cmd/hub.c in, to test the command without a binary.
$(O)/tests/test_hub: cmd/hub.c
# test_double_fetch compiles the fuzz harness and the hook pointer in.
$(O)/tests/test_double_fetch: fuzz/interleave.c fuzz/interleave.h src/fuzzhook.c src/barrier.h

$(O)/bench/%: bench/%.c $(DEV_OBJS) $(LIBA) $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Ibench $(LDFLAGS) -o $@ $< $(DEV_OBJS) $(LIBA) $(LDLIBS) $(EXTRA_LDLIBS)

tests: $(TEST_BINS) $(TOOL_BINS) $(VSHM)

# deps.sh --check is silent and cheap when everything is present.
deps:
	$(Q)scripts/deps.sh --check >/dev/null 2>&1 || scripts/deps.sh

check: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)O=$(O) VSHM=$(abspath $(VSHM)) TOOLS=$(abspath $(O)/tests) scripts/run-tests.sh $(TEST_BINS) $(TEST_SCRIPTS)

# The guest module, against the installed linux-headers-amd64, into $(O)/kmod.
# check-guest: only the tests that boot a QEMU guest (TCG) with it.
.PHONY: kmod check-guest
GUEST_TESTS := $(sort $(wildcard tests/test_guest_*.sh))

kmod:
	$(Q)$(MAKE) --no-print-directory -C kmod BUILD=$(abspath $(O))/kmod

check-guest: deps
	$(Q)$(MAKE) --no-print-directory $(VSHM) $(TOOL_BINS) kmod
	$(Q)tests/guest/mkinitramfs.sh -o $(O)/guest/initramfs.cpio.gz $(O)/kmod/virtio_shm.ko
	$(Q)O=$(O) VSHM=$(abspath $(VSHM)) TOOLS=$(abspath $(O)/tests) scripts/run-tests.sh $(GUEST_TESTS)

# The figures always go to a JSON ($(O)/bench.json unless BENCH_JSON=path),
# which scripts/plot-bench.sh draws as $(O)/bench.png, copied to docs/perf.png.
BENCH_JSON ?=
BENCH_OUT = $(or $(BENCH_JSON),$(O)/bench.json)
bench: deps
	$(Q)$(MAKE) --no-print-directory $(BENCH_BINS) $(VSHM) CFLAGS="-O2 -g -march=native"
	$(Q)O=$(O) BENCH_JSON=$(BENCH_OUT) scripts/run-bench.sh $(BENCH_BINS) scripts/ringtest.sh scripts/bench-guest.sh
	$(Q)O=$(O) scripts/plot-bench.sh $(BENCH_OUT) $(O)/bench.png
	$(Q)if [ -f $(O)/bench.png ]; then cp $(O)/bench.png docs/perf.png; fi

# ---- fuzzing (clang + libFuzzer + ASan/UBSan) ------------------------------
FUZZ_O := $(O)/fuzz
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -Itests \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DVSHM_FUZZ
FUZZ_LIB_SRCS := $(LIB_SRCS) $(wildcard devices/*.c)
# The smoke run shares 270 s among the targets (22 s each for twelve), which
# keeps it under five minutes however many targets there are.
FUZZ_SMOKE_BUDGET ?= 270
FUZZ_SMOKE_SECONDS ?= $(shell expr $(FUZZ_SMOKE_BUDGET) / $(words $(FUZZ_BINS)))
FUZZ_SECONDS ?= 600

# fuzz/interleave.c (the double-fetch harness) is #included by its targets.
$(FUZZ_O)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB_SRCS) $(wildcard src/*.h include/vshm/*.h fuzz/*.h fuzz/interleave.c)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB_SRCS) -lpthread $(EXTRA_LDLIBS)

fuzz-build: deps
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz-smoke: fuzz-build
	$(Q)scripts/run-fuzz.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)O=$(O) scripts/demo.sh

clean:
	rm -rf build build-*

-include $(shell find $(O) -name '*.d' 2>/dev/null)
