# gunmetal — build, demo and tests.
#
#   make            build/libgunmetal.so.0 (+ .so link, include/, gunmetal.pc) and build/testserver
#   make demo       install what is missing, build, run examples/c/get.c against the test server
#   make test       install what is missing, build, run every test of every language present
#   make deps       only install what is missing (scripts/deps.sh)
#   make bench      benchmarks (bench/run.sh), figures side by side with peers
#   make fuzz       fuzz the HTTP/1.1 parser, its chunked decoder, the HTTP/2 frame
#                   handling and the JSON options parser, 30 s each (the C API's
#                   random call sequences run in make test: tests/c/fuzz_api.c)
#   make stress     crash-class stress, minutes (tests/stress; make test runs a slice)
#   make hex        the Erlang hex package: build/hex/gunmetal-VSN.tar (Go sources vendored)
#   make wheel      the Python wheel: build/wheel/gunmetal-VSN-py3-none-manylinux_*.whl
#                   (stripped libgunmetal.so inside; bindings/python/build_wheel.sh)
#   make clean
#   make IS_DEP=1   (what erlang.mk runs on a git dependency) the Erlang application
#                   at the top: ebin/ and priv/ (NIF + library), as rebar.config has it.
#                   erlang.mk looks for the word rebar3 on this file's uncommented
#                   lines; keep it off them, or erlang.mk rewrites this file.
#
# PREFIX (default: the build dir) is the prefix written into gunmetal.pc;
# `make install PREFIX=/usr/local [DESTDIR=...]` installs there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:

GO      ?= go
CC      ?= cc
BUILD   ?= build
B       := $(abspath $(BUILD))
PREFIX  ?= $(B)
# When the prefix is the build dir everything sits in it flat; elsewhere the
# usual lib/ and include/.
ifeq ($(abspath $(PREFIX)),$(B))
PC_LIBDIR := $${prefix}
else
PC_LIBDIR := $${prefix}/lib
endif
PC_INCLUDEDIR := $${prefix}/include

SONAME  := libgunmetal.so.0
LIB     := $(B)/$(SONAME)
VERSION := $(shell sed -n 's/^\#define GM_VERSION_STRING "\(.*\)"/\1/p' include/gunmetal.h)
CFLAGS_EXAMPLE ?= -O2 -g -Wall -Wextra

# What the library is built from (internal/ too, should it appear).
LIB_SRCS    := $(shell find core capi $(wildcard internal) \( -name '*.go' ! -name '*_test.go' \) -o -name '*.c' -o -name '*.h') \
               go.mod go.sum include/gunmetal.h
SERVER_SRCS := $(shell find tests/server tests/testserver -name '*.go' ! -name '*_test.go') go.mod go.sum

.PHONY: erlang-app all deps demo test test-vet test-go test-c test-python test-erlang test-stress stress bench fuzz clean install examples hex wheel FORCE

ifdef IS_DEP
.DEFAULT_GOAL := erlang-app
endif
erlang-app:
	$(MAKE) -C bindings/erlang_nif --no-print-directory all EBIN=$(CURDIR)/ebin PRIV=$(CURDIR)/priv

all: $(LIB) $(B)/libgunmetal.so $(B)/include/gunmetal.h $(B)/gunmetal.pc $(B)/testserver

# -- the library --------------------------------------------------------------
$(LIB): $(LIB_SRCS)
	@mkdir -p $(B)
	$(GO) build -buildmode=c-shared -ldflags '-extldflags=-Wl,-soname,$(SONAME)' -o $@ ./capi
	@rm -f $(B)/libgunmetal.so.h  # cgo's generated header: include/gunmetal.h is the contract
	@touch $@  # go build leaves an up-to-date file untouched

$(B)/libgunmetal.so: $(LIB)
	ln -sfn $(SONAME) $@

$(B)/include/gunmetal.h: include/gunmetal.h
	@mkdir -p $(@D)
	cp $< $@

# Rewritten only when its text changes (PREFIX may differ between runs).
$(B)/gunmetal.pc: gunmetal.pc.in include/gunmetal.h FORCE
	@mkdir -p $(@D)
	@sed -e 's|@PREFIX@|$(abspath $(PREFIX))|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	     -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "wrote $@"; fi

$(B)/testserver: $(SERVER_SRCS)
	@mkdir -p $(B)
	$(GO) build -o $@ ./tests/server

# -- examples ------------------------------------------------------------------
examples: $(B)/get $(B)/ws_echo $(B)/trace $(B)/proxy

$(B)/%: examples/c/%.c $(LIB) $(B)/libgunmetal.so $(B)/include/gunmetal.h $(B)/gunmetal.pc
	$(CC) $(CFLAGS_EXAMPLE) -o $@ $< \
	    $$(PKG_CONFIG_PATH=$(B) pkg-config --cflags --libs gunmetal) -Wl,-rpath,$(B)

# -- set-up --------------------------------------------------------------------
deps:
	@bash scripts/deps.sh

# deps first, then the build: with -j the two must not race.
demo: deps
	@$(MAKE) --no-print-directory all examples
	@bash scripts/demo.sh $(B)

# -- tests ---------------------------------------------------------------------
# Every step runs even if an earlier one failed (-k); the exit status is
# non-zero if any did. -j1: the suites are not meant to share 2 cores.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -k -j1 test-vet test-go test-c test-python test-erlang test-stress

test-vet:
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 -timeout 8m ./...

test-c: all
	@if [ -f tests/c/run.sh ]; then bash tests/c/run.sh $(B); else echo "tests/c/run.sh missing"; fi

test-python: all
	bash bindings/python/run_tests.sh $(B)

test-erlang: all
	bash bindings/erlang_nif/run_tests.sh $(B)
	bash bindings/erlang_nif/test_packaging.sh $(B)

# The C ABI under GODEBUG=invalidptr=1,cgocheck=1 and a cgocheck2 build
# ($(B)/cgocheck2); the Go shapes (core/stress_test.go) run in test-go.
test-stress: all
	bash tests/stress/run.sh $(B) quick

stress: all
	bash tests/stress/run.sh $(B) long
	GM_STRESS_SECONDS=60 $(GO) test -race -count=1 -timeout 20m -run 'TestStress' -v ./core/

# -- the rest ------------------------------------------------------------------
bench: deps
	@$(MAKE) --no-print-directory all
	@if [ -f bench/run.sh ]; then bash bench/run.sh $(B); else echo "bench/run.sh missing: no benchmarks yet"; fi

fuzz:
	$(GO) test -run XXX -fuzz FuzzH1Parser -fuzztime 30s ./core/
	$(GO) test -run XXX -fuzz FuzzHTTP2Handle -fuzztime 30s ./core/
	$(GO) test -run XXX -fuzz FuzzH1Chunked -fuzztime 30s ./core/
	$(GO) test -run XXX -fuzz FuzzParseOptions -fuzztime 30s ./core/

install: all
	@if [ "$(abspath $(PREFIX))" = "$(B)" ]; then \
	    echo "make install: set PREFIX, e.g. make install PREFIX=/usr/local" >&2; exit 1; fi
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(PREFIX)/lib/libgunmetal.so
	install -m 0644 include/gunmetal.h $(DESTDIR)$(PREFIX)/include/gunmetal.h
	install -m 0644 $(B)/gunmetal.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/gunmetal.pc

hex:
	bash bindings/erlang_nif/make_hex.sh $(B)/hex

wheel:
	bash bindings/python/build_wheel.sh $(B)/wheel

clean:
	rm -rf $(B)

FORCE:
