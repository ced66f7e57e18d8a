# sockd: `make run` serves the demo, `make check` runs the static checks,
# `make test` runs every test, `make bench` prints the figures.
GO      ?= go
GOFMT   ?= gofmt
BIN     := $(CURDIR)/bin
RUNDIR  := $(CURDIR)/.run
API     ?= $(RUNDIR)/api.sock

.PHONY: all build run check test test-short bench deps clean

all: build

build:
	$(GO) build -o $(BIN)/sockd ./cmd/sockd
	$(GO) build -o $(BIN)/sockctl ./cmd/sockctl
	$(GO) build -o $(BIN)/sockd-demo ./contrib/demo

# Starts sockd on contrib/examples; the demo answers on 127.0.0.1:8080.
# Try: curl http://127.0.0.1:8080/ ; bin/sockctl --api .run/api.sock status demo
run: build
	@mkdir -p $(RUNDIR)
	PATH="$(BIN):$$PATH" $(BIN)/sockd --units contrib/examples --api $(API)

# Installs what the tests need (Debian packages, Go modules); idempotent.
deps:
	./.ci/deps

test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout 12m ./...

# Without make deps or the race detector; -short skips integration/'s
# end-to-end tests.
test-short:
	@echo "go test -short: skips integration/ (the built binaries with real apps: gunicorn, uvicorn, node); make test runs it"
	$(GO) test -short ./...

# Static checks; fails on any finding. staticcheck is pinned and fetched
# through the module proxy (its options are in staticcheck.conf).
check:
	@out=$$($(GOFMT) -l .) || exit 1; \
	if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) mod tidy -diff

bench: deps build
	$(GO) run ./bench -out bench/results/latest.md

clean:
	rm -rf $(BIN) $(RUNDIR)
