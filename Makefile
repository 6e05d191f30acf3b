# whmgate - see README.md. `make` builds build/whmgate.
CC ?= cc
PKGS = libuv libcurl openssl yajl
PKGS += zlib
LLHTTP_DIR = /usr/share/llhttp
LLHTTP_INC = /usr/share/include/llhttp
WARN = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough -Wvla
CFLAGS ?= -O2 -g
ifdef WERROR
WARN += -Werror
endif
ifdef SANITIZE
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
BUILD ?= build/san
else
BUILD ?= build
endif
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) -iquote proxy
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(CPPFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# Debian packages the build, the tests and `make run` need.
DEB_PKGS = build-essential pkg-config libuv1-dev libcurl4-openssl-dev libssl-dev \
           libyajl-dev node-llhttp curl openssl python3 procps valgrind clang libclang-rt-14-dev rsyslog strace \
           nginx wrk
# The rollout checks: the man page's lint, the unit's verify, rotation dry runs,
# HAProxy's health check against the admin listener.
DEB_PKGS += mandoc systemd logrotate haproxy
# The status page is tested in a real headless browser.
DEB_PKGS += chromium
# The README's auditor recipes are jq, and a test runs them.
DEB_PKGS += jq
# audit verify reads .gz rotations through zlib.
DEB_PKGS += zlib1g-dev

CORE = util log conf http params target auth policy outcome syslog audit_redact audit_record audit_tail audit audit_writer audit_verify limits record_read
SRCS_CORE = $(CORE:%=proxy/%.c)
SRCS_DAEMON = proxy/tls.c proxy/upcurl.c proxy/upstream.c proxy/metrics.c proxy/conn.c proxy/req.c proxy/server.c proxy/admin.c proxy/policy_tool.c proxy/main.c
SRCS_DAEMON += proxy/notify.c proxy/status.c
LLHTTP_SRCS = llhttp api http
OBJS_CORE = $(CORE:%=$(BUILD)/%.o) $(LLHTTP_SRCS:%=$(BUILD)/llhttp_%.o)
OBJS_DAEMON = $(SRCS_DAEMON:proxy/%.c=$(BUILD)/%.o)
UNIT_TESTS = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c)) test_outcome_portable

.PHONY: all deps run test unit integration clean bench bench-callgrind fuzz fuzz-build install uninstall
all: $(BUILD)/whmgate

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/%.o: proxy/%.c proxy/*.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# llhttp is Debian's generated C; strict mode, never our warnings.
$(BUILD)/llhttp_%.o: $(LLHTTP_DIR)/%.c | $(BUILD)
	$(CC) -std=c11 $(CFLAGS) $(CPPFLAGS) -w -c -o $@ $<

$(BUILD)/whmgate: $(OBJS_CORE) $(OBJS_DAEMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/test_%: tests/unit/test_%.c tests/unit/*.h $(OBJS_CORE)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(OBJS_CORE) $(LIBS)

# The outcome skipper's plain-C block code, what machines without SSE2 run.
$(BUILD)/test_outcome_portable: tests/unit/test_outcome.c tests/unit/*.h proxy/outcome.c $(OBJS_CORE)
	$(CC) $(ALL_CFLAGS) -U__SSE2__ -Itests/unit $(LDFLAGS) -o $@ $< proxy/outcome.c \
	    $(filter-out $(BUILD)/outcome.o,$(OBJS_CORE)) $(LIBS)

# Installs only what is missing, so a second run costs one dpkg query.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

run: deps
	$(MAKE) all
	./tests/demo.sh

unit: $(UNIT_TESTS:%=$(BUILD)/%)
	@python3 tests/run_all.py --unit-only --build $(BUILD)

# Every suite, on the normal build and on an ASan/UBSan build; the
# multi-worker tests also on a ThreadSanitizer build.
test: deps
	$(MAKE) WERROR=1 all $(UNIT_TESTS:%=build/%)
	$(MAKE) WERROR=1 SANITIZE=address,undefined all $(UNIT_TESTS:%=build/san/%)
	$(MAKE) WERROR=1 SANITIZE=thread BUILD=build/tsan all
	$(MAKE) fuzz-build
	python3 tests/run_all.py --build build --san-build build/san \
	    --tsan-build build/tsan --fuzz-seconds 10

# libFuzzer targets (tests/fuzz/fuzz_*.c) over the socket-free modules,
# built with clang, ASan and UBSan. `make fuzz FUZZ_SECONDS=600` runs each
# target that long on its seed corpus; findings land in build/fuzz/.
FUZZ_TARGETS = http params policy conf outcome
FUZZ_TARGETS += audit_record
FUZZ_TARGETS += records
FUZZ_SECONDS ?= 60
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -std=c11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CPPFLAGS) \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJS = $(CORE:%=build/fuzz/%.o) $(LLHTTP_SRCS:%=build/fuzz/llhttp_%.o)

build/fuzz/%.o: proxy/%.c proxy/*.h
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -c -o $@ $<

build/fuzz/llhttp_%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -w -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz-build: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)

fuzz: deps fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
# The binary, man page, unit, sysusers entry and logrotate file; the config
# (/etc/whmgate/whmgate.json) and the service's environment file
# (/etc/default/whmgate) only when absent, never over an operator's edits.
# Installed into the live system (no DESTDIR), the whmgate user is created
# and systemd told about the unit.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/whmgate \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)/etc/whmgate $(DESTDIR)/etc/default \
	  $(DESTDIR)/etc/logrotate.d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(BUILD)/whmgate $(DESTDIR)$(PREFIX)/bin/whmgate
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/whmgate/README.md
	install -m 0644 man/whmgate.8 $(DESTDIR)$(PREFIX)/share/man/man8/whmgate.8
	sed 's#/usr/local#$(PREFIX)#g' conf/whmgate.service >$(DESTDIR)$(UNITDIR)/whmgate.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/whmgate.service
	install -m 0644 conf/whmgate.sysusers $(DESTDIR)$(SYSUSERSDIR)/whmgate.conf
	install -m 0644 conf/logrotate $(DESTDIR)/etc/logrotate.d/whmgate
	[ -e $(DESTDIR)/etc/whmgate/whmgate.json ] || \
	  install -m 0644 conf/whmgate.installed.json $(DESTDIR)/etc/whmgate/whmgate.json
	[ -e $(DESTDIR)/etc/default/whmgate ] || \
	  install -m 0600 conf/whmgate.default $(DESTDIR)/etc/default/whmgate
	if [ -z "$(DESTDIR)" ]; then \
	  systemd-sysusers $(SYSUSERSDIR)/whmgate.conf; \
	  systemctl daemon-reload 2>/dev/null || true; \
	fi

# Removes what install put; the config and the environment file only when
# unchanged (they hold the operator's keys and tokens). The whmgate user,
# the audit trail in /var/log/whmgate and /var/lib/whmgate stay.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/whmgate $(DESTDIR)$(PREFIX)/share/man/man8/whmgate.8 \
	  $(DESTDIR)$(UNITDIR)/whmgate.service $(DESTDIR)$(SYSUSERSDIR)/whmgate.conf \
	  $(DESTDIR)/etc/logrotate.d/whmgate
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/whmgate
	if cmp -s conf/whmgate.installed.json $(DESTDIR)/etc/whmgate/whmgate.json; then \
	  rm -f $(DESTDIR)/etc/whmgate/whmgate.json; \
	else echo "kept $(DESTDIR)/etc/whmgate/whmgate.json (edited)"; fi
	if cmp -s conf/whmgate.default $(DESTDIR)/etc/default/whmgate; then \
	  rm -f $(DESTDIR)/etc/default/whmgate; \
	else echo "kept $(DESTDIR)/etc/default/whmgate (edited)"; fi
	-rmdir $(DESTDIR)/etc/whmgate 2>/dev/null
	if [ -z "$(DESTDIR)" ]; then systemctl daemon-reload 2>/dev/null || true; fi

# `make bench` (SPEC section 10): nginx, HAProxy and wrk from Debian, then
# tests/bench/run.sh. BENCH_SECONDS (10) per row, WORKERS (1).
BENCH_PKGS = nginx haproxy wrk
bench: deps
	@missing=$$(for p in $(BENCH_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	$(MAKE) all
	tests/bench/run.sh

# Instructions and allocation calls per call under callgrind.
bench-callgrind: deps
	$(MAKE) all
	python3 tests/bench/callgrind.py $(BUILD)/whmgate

clean:
	rm -rf build
