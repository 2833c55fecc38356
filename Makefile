# erpsync — common tasks. `make demo` and `make test` are the README's first commands.
GO      ?= go
BIN     := bin/erpsync
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# nfpm packs the Debian package (make deb); make test-deps installs it.
NFPM_VERSION := v2.45.2
NFPM         := bin/tools/nfpm-$(NFPM_VERSION)/nfpm

.PHONY: all build test test-deps demo bench mariadb vet fmt clean install uninstall deb nfpm

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/erpsync

# Debian's mariadb-server provides the mariadbd that the demo and the tests
# start in a temporary directory; install it when it is missing.
mariadb:
	@if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then :; else \
		echo "==> installing Debian's mariadb-server (needed by the demo and the tests)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null; \
	fi

# The tests also check the systemd unit with systemd-analyze (Debian's
# systemd package; installing it does not boot it) and need curl; the Debian
# package's test needs dpkg, lintian and nfpm, the alert rules' test promtool
# (Debian's prometheus package).
test-deps: mariadb $(NFPM)
	@missing=""; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v dpkg-deb >/dev/null 2>&1 || missing="$$missing dpkg"; \
	command -v lintian >/dev/null 2>&1 || missing="$$missing lintian"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing="$$missing libfaketime"; \
	if [ -n "$$missing" ]; then \
		echo "==> installing$$missing (used by the tests)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The daemon's main job on a self-contained default: throwaway MariaDB with
# sample ERPNext data, a local verifying receiver, and erpsync. Ctrl-C stops it.
demo: mariadb build
	./$(BIN) demo $(DEMO_FLAGS)

# The whole test suite, with the race detector, against a real MariaDB.
# -parallel 4: the end-to-end tests that call t.Parallel mostly wait (for
# faults to pass, retries, the receiver), so four of them share 2 cores well.
# ./packaging runs last and alone: as root it installs the Debian package into
# this machine, and while its erpsync user exists `erpsync check` run as root
# judges files for that user, which cmd/erpsync's check tests do not expect.
test: test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -parallel 4 -timeout 15m $$($(GO) list ./... | grep -v '/packaging$$')
	$(GO) test -count=1 -timeout 5m ./packaging/

# The Go micro-benchmarks, then the end-to-end benchmark (cmd/erpsync-bench: its
# own MariaDB, a verifying receiver, erpsync run as a user runs it; about 15
# minutes on 2 cores). It prints a table of every figure beside the ceiling
# measured in the same run; see BENCH.md. BENCH_FLAGS="--quick" for a smoke run
# of about 3 minutes, "--json FILE" for the results as JSON.
bench: mariadb
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/erpsync-bench $(BENCH_FLAGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

clean:
	rm -rf bin $(DIST)

# The Debian package: dist/erpsync_<version>_<arch>.deb for each of
# DEB_ARCHES, from a static binary (CGO_ENABLED=0: the outbox's SQLite is pure
# Go), packed by nfpm (pinned; installed from the Go module proxy into
# bin/tools, outside go.mod) with packaging/nfpm.yaml. DEB_VERSION defaults to
# packaging/deb-version (the tag, or the commit time and hash); the binary's
# `erpsync --version` says the same. The tests in packaging/ lint and install it.
DIST         ?= dist
DEB_ARCHES   ?= amd64 arm64
DEB_SETTINGS ?= settings.toml
DEB_MAINTAINER ?= erpsync maintainers <maintainers@users.noreply.h-seed-3cb756ad.example>
DEB_VERSION  ?= $(shell sh packaging/deb-version)

$(NFPM):
	GOBIN=$(CURDIR)/$(dir $(NFPM)) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

nfpm: $(NFPM)

deb: $(NFPM)
	@set -e; \
	version='$(DEB_VERSION)'; \
	mkdir -p $(DIST)/build; \
	sed -e 's#/usr/local/bin/erpsync#/usr/bin/erpsync#g' -e 's#Installed by `make install`#Installed by the erpsync package#' \
		systemd/erpsync.service > $(DIST)/build/erpsync.service; \
	sh packaging/deb-changelog "$$version" "$(DEB_MAINTAINER)" | gzip -9n > $(DIST)/build/changelog.gz; \
	gzip -9n < packaging/erpsync.1 > $(DIST)/build/erpsync.1.gz; \
	for arch in $(DEB_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w -X main.version=$$version" \
			-o $(DIST)/build/$$arch/erpsync ./cmd/erpsync; \
		DEB_ARCH=$$arch DEB_VERSION=$$version ERPSYNC_BIN=$(DIST)/build/$$arch/erpsync \
		ERPSYNC_UNIT=$(DIST)/build/erpsync.service ERPSYNC_SETTINGS=$(DEB_SETTINGS) \
		ERPSYNC_DOC=$(DIST)/build DEB_MAINTAINER="$(DEB_MAINTAINER)" \
			$(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/erpsync_$${version}_$$arch.deb; \
	done

# Where `make install` puts things. DESTDIR stages the files elsewhere (for a
# package): then no user is made, nothing is chowned and systemd is not told.
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
UNITDIR      ?= /etc/systemd/system
CONFDIR      ?= /etc/erpsync
ERPSYNC_USER ?= erpsync
ISUDO        := $(if $(DESTDIR),,$(SUDO))
OWN          := $(if $(DESTDIR),,-o root -g $(ERPSYNC_USER))

# Builds, then installs the binary, the systemd unit, the logrotate file and an
# example settings.toml (never over an existing one), creates the erpsync user,
# and prints the next steps.
install: build
	@set -e; \
	if [ -z "$(DESTDIR)" ] && ! getent passwd $(ERPSYNC_USER) >/dev/null; then \
		$(ISUDO) useradd --system --user-group --home-dir /var/lib/erpsync --no-create-home \
			--shell /usr/sbin/nologin --comment "erpsync daemon" $(ERPSYNC_USER); \
		echo "==> created the system user $(ERPSYNC_USER)"; \
	fi; \
	$(ISUDO) install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/erpsync; \
	echo "==> installed $(BINDIR)/erpsync"; \
	$(ISUDO) install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/logrotate.d; \
	sed 's#/usr/local/bin/erpsync#$(BINDIR)/erpsync#g; s#/etc/erpsync/#$(CONFDIR)/#g' systemd/erpsync.service \
		| $(ISUDO) install -m 0644 /dev/stdin $(DESTDIR)$(UNITDIR)/erpsync.service; \
	echo "==> installed $(UNITDIR)/erpsync.service"; \
	$(ISUDO) install -m 0644 systemd/erpsync.logrotate $(DESTDIR)/etc/logrotate.d/erpsync; \
	echo "==> installed /etc/logrotate.d/erpsync"; \
	$(ISUDO) install -d -m 0750 $(OWN) $(DESTDIR)$(CONFDIR); \
	if $(ISUDO) test -e $(DESTDIR)$(CONFDIR)/settings.toml; then \
		echo "==> kept the existing $(CONFDIR)/settings.toml"; \
	else \
		$(ISUDO) install -m 0640 $(OWN) settings.toml $(DESTDIR)$(CONFDIR)/settings.toml; \
		echo "==> installed an example $(CONFDIR)/settings.toml (mode 0640)"; \
	fi; \
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then $(ISUDO) systemctl daemon-reload; fi; \
	echo; \
	echo "Next steps:"; \
	echo "  1. Edit $(CONFDIR)/settings.toml: tenant.id, ingest.url, erp.dsn (a read-only database user), erp.site_url."; \
	echo "  2. Put the tenant secret (from the ingestion service, or make one) in $(CONFDIR)/secret:"; \
	echo "       $(BINDIR)/erpsync keygen | sudo install -m 0640 -o root -g $(ERPSYNC_USER) /dev/stdin $(CONFDIR)/secret"; \
	echo "  3. sudo erpsync check            # says how to fix anything that is wrong"; \
	echo "  4. sudo systemctl enable --now erpsync"; \
	echo "  5. sudo erpsync status; journalctl -u erpsync -f; tail -f /var/log/erpsync/sync.log | grep HMAC"

# Removes the binary, the unit and the logrotate file. Settings, secret,
# outbox, logs and the user stay; the command to remove them is printed.
uninstall:
	@set -e; \
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		$(ISUDO) systemctl disable --now erpsync 2>/dev/null || true; \
	fi; \
	$(ISUDO) rm -f $(DESTDIR)$(BINDIR)/erpsync $(DESTDIR)$(UNITDIR)/erpsync.service $(DESTDIR)/etc/logrotate.d/erpsync; \
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then $(ISUDO) systemctl daemon-reload; fi; \
	echo "==> removed $(BINDIR)/erpsync, $(UNITDIR)/erpsync.service and /etc/logrotate.d/erpsync"; \
	echo "Kept $(CONFDIR) (settings, secret), /var/lib/erpsync (the outbox), /var/log/erpsync and the user $(ERPSYNC_USER)."; \
	echo "To remove them too: sudo rm -rf $(CONFDIR) /var/lib/erpsync /var/log/erpsync && sudo userdel $(ERPSYNC_USER)"
