# BlobStore — build, test, benchmark.
#   make deps    install the Debian packages the build needs (when missing)
#   make build   release build of blobctl and the tests: one build serves `make test` and `make run`
#   make test    installs what the tests need (engines, skopeo, oras), then the test suite,
#                30 rounds of the crash-and-race harness and 30 s of each fuzz target (what CI runs)
#   make crash-race CRASH_ROUNDS=N   the crash-and-race harness alone
#   make fuzz FUZZ_SECONDS=N         the libFuzzer targets (tar, manifests, layers), N s each
#   make bench   ingest/read benchmark against restic, borg, zstd and openssl
#   make run     serve a registry on 127.0.0.1:5000 from the embedded store in ./data
#   make blobctl ARGS="…"  any blobctl command on the same store

APT_PACKAGES := libzstd-dev liblmdb-dev libssl-dev pkg-config zlib1g-dev libfuse3-dev fuse3 busybox-static apache2-utils openssl zstd
BENCH_PACKAGES := restic borgbackup zstd openssl time
SWIFT ?= swift
CONFIG ?= release
ARGS ?= df
STORE ?= $(CURDIR)/data

.PHONY: deps test-deps bench-deps build test crash-race fuzz bench run blobctl clean

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test-deps: deps
	bash .ci/install-test-deps.sh

bench-deps: deps
	@missing=""; for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# With the tests: `swift test` builds with other flags than a plain `swift build`, so
# building both here, the same way, lets `make test` and `make run` share one build.
build: deps
	$(SWIFT) build -c $(CONFIG) --build-tests

# Release mode: the suite streams multi-GiB blobs, which a debug build would crawl through.
# Then the crash-and-race harness, short form (the long form: make crash-race CRASH_ROUNDS=500).
test: test-deps build
	$(SWIFT) test -c $(CONFIG) --skip-build
	BLOBCTL=$(CURDIR)/.build/$(CONFIG)/blobctl bash bench/crash-race.sh --rounds $(CRASH_ROUNDS)
	bash Fuzz/fuzz.sh $(FUZZ_SECONDS)

CRASH_ROUNDS ?= 30
FUZZ_SECONDS ?= 30

fuzz: deps
	bash Fuzz/fuzz.sh $(FUZZ_SECONDS)

crash-race: build
	BLOBCTL=$(CURDIR)/.build/$(CONFIG)/blobctl bash bench/crash-race.sh --rounds $(CRASH_ROUNDS)

bench: bench-deps build
	BLOBCTL=$(CURDIR)/.build/$(CONFIG)/blobctl bash bench/ingest-bench.sh $(CORPUS)

ADDR ?= 127.0.0.1:5000

run: build
	@mkdir -p $(STORE)
	$(CURDIR)/.build/$(CONFIG)/blobctl --store $(STORE) serve --addr $(ADDR)

blobctl: build
	@mkdir -p $(STORE)
	$(CURDIR)/.build/$(CONFIG)/blobctl --store $(STORE) $(ARGS)

clean:
	rm -rf .build
