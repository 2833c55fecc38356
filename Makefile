# erpsync — common tasks. `make demo` and `make test` are the README's first commands.
GO      ?= go
BIN     := bin/erpsync
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test demo bench mariadb vet fmt clean

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

# The daemon's main job on a self-contained default: throwaway MariaDB with
# sample ERPNext data, a local verifying receiver, and erpsync. Ctrl-C stops it.
demo: mariadb build
	./$(BIN) demo $(DEMO_FLAGS)

# The whole test suite, with the race detector, against a real MariaDB.
test: mariadb
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

bench: mariadb
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

clean:
	rm -rf bin
