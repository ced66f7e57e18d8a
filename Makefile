# sockd: `make run` serves the demo, `make check` runs the static checks,
# `make test` runs every test, `make bench` prints the figures.
GO      ?= go
GOFMT   ?= gofmt
BIN     := $(CURDIR)/bin
RUNDIR  := $(CURDIR)/.run
API     ?= $(RUNDIR)/api.sock

.PHONY: all build run check test test-short bench deps clean man install uninstall

# make install: where things go. PREFIX=/usr/local by default; DESTDIR
# stages the tree elsewhere (packaging, the tests). The systemd unit goes
# where systemd looks for units an administrator installed,
# $(PREFIX)/lib/systemd/system (/usr/local/lib/systemd/system; with
# PREFIX=/usr, the distribution's /usr/lib/systemd/system), not in
# /etc/systemd/system, which stays the admin's for overrides
# (systemctl edit). Its ExecStart= names $(BINDIR)/sockd.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
# sockd's unit directory, as in sockd.service and sockd's --units default:
# made empty (0755, root's) if missing, so that the service starts.
UNITSDIR ?= /etc/sockd/units
# The man pages are made here, from the binaries' own help and docs/.
BUILD    := $(CURDIR)/build
MANBUILD := $(BUILD)/man
# A page's date: the last commit's, where there is one (reproducible).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
export SOURCE_DATE_EPOCH

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
	$(GO) test -race -timeout 20m ./...

# Without make deps or the race detector; -short skips integration/'s
# end-to-end tests.
test-short:
	@echo "go test -short: skips integration/ (the built binaries with real apps: gunicorn, uvicorn, node); make test runs it"
	$(GO) test -short ./...

# Static checks; fails on any finding. staticcheck is pinned and fetched
# through the module proxy (its options are in staticcheck.conf).
# contrib/ansible is linted by Debian's ansible-lint, offline (its options
# are in contrib/ansible/.ansible-lint), and its playbooks syntax-checked
# by ansible-core's ansible-playbook; make deps installs both.
check:
	@out=$$($(GOFMT) -l .) || exit 1; \
	if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) mod tidy -diff
	@for t in ansible-lint ansible-playbook; do command -v $$t >/dev/null || \
		{ echo "make check: $$t not found (make deps installs Debian's ansible-lint and ansible-core)"; exit 1; }; done
	cd contrib/ansible && ansible-lint --offline --nocolor -q
	cd contrib/ansible && ansible-playbook --syntax-check -i inventory.example.yml site.yml deploy.yml

bench: deps build
	$(GO) run ./bench -out bench/results/latest.md

# sockd(8) and sockctl(1) from the flags, verbs and usage of the binaries
# (their hidden __man), sockd.units(5) from docs/units.md.
man: build
	@mkdir -p $(MANBUILD)
	$(BIN)/sockd __man >$(MANBUILD)/sockd.8.tmp
	$(BIN)/sockctl __man >$(MANBUILD)/sockctl.1.tmp
	$(GO) run ./internal/mangen/mdman -name sockd.units -section 5 -manual "File Formats" \
		-what "unit files of sockd: sockets and the services they start" \
		-see "sockd(8), sockctl(1), systemd.unit(5), systemd.socket(5), systemd.service(5), systemd.exec(5)" \
		docs/units.md >$(MANBUILD)/sockd.units.5.tmp
	cd $(MANBUILD) && for f in sockd.8 sockctl.1 sockd.units.5; do mv $$f.tmp $$f; done

# The binaries, the systemd unit, the completions and the man pages.
# sockd-demo stays in bin/: it is the demo of make run, not a tool.
install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -d -m 0755 $(DESTDIR)$(UNITSDIR)
	install -m 0755 $(BIN)/sockd $(BIN)/sockctl $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local/bin|$(BINDIR)|g' contrib/sockd.service >$(BUILD)/sockd.service
	install -m 0644 $(BUILD)/sockd.service $(DESTDIR)$(UNITDIR)/sockd.service
	install -m 0644 contrib/completion/sockctl.bash $(DESTDIR)$(BASHCOMPDIR)/sockctl
	install -m 0644 contrib/completion/_sockctl $(DESTDIR)$(ZSHCOMPDIR)/_sockctl
	install -m 0644 $(MANBUILD)/sockctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MANBUILD)/sockd.units.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MANBUILD)/sockd.8 $(DESTDIR)$(MANDIR)/man8/

# Removes what install installed (the same PREFIX and DESTDIR), no more:
# the unit directory only if it is empty.
uninstall:
	rmdir $(DESTDIR)$(UNITSDIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(BINDIR)/sockd $(DESTDIR)$(BINDIR)/sockctl $(DESTDIR)$(UNITDIR)/sockd.service \
		$(DESTDIR)$(BASHCOMPDIR)/sockctl $(DESTDIR)$(ZSHCOMPDIR)/_sockctl \
		$(DESTDIR)$(MANDIR)/man1/sockctl.1 $(DESTDIR)$(MANDIR)/man5/sockd.units.5 $(DESTDIR)$(MANDIR)/man8/sockd.8

clean:
	rm -rf $(BIN) $(RUNDIR) $(BUILD)
