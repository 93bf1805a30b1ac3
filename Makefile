# kiln — the Azure Linux toolkit's image targets, with kiln underneath.
#
#   make image [CONFIG_FILE=…]           build an image (default: imageconfigs/demo-efi.json)
#   make iso CONFIG_FILE=…               build an ISO installer
#   make validate-image-config CONFIG_FILE=… [CONFIG_BASE_DIR=…]
#   make test                            install test host packages, lint, run every test
#
# Variables keep upstream's names (scripts/imggen.mk): CONFIG_FILE, CONFIG_BASE_DIR, IMAGE_TAG,
# RELEASE_VERSION, REPO_LIST, DISABLE_UPSTREAM_REPOS, LOG_LEVEL, LOG_COLOR.

SHELL := /bin/bash
.DEFAULT_GOAL := image

CARGO        ?= cargo
OUT_DIR      ?= out
BIN_DIR      := $(OUT_DIR)/bin
KILN         := $(BIN_DIR)/kiln
PYTHON       ?= /usr/bin/python3
DEFAULT_CONFIG := imageconfigs/demo-efi.json
LOG_LEVEL    ?= info
LOG_COLOR    ?= auto

# Upstream's image targets need CONFIG_FILE; kiln's `make image` defaults to its offline demo.
IMAGE_CONFIG    = $(or $(CONFIG_FILE),$(DEFAULT_CONFIG))
CONFIG_BASE_DIR ?= $(dir $(IMAGE_CONFIG))

.PHONY: image iso validate-image-config test lint host-deps kiln sample-repo distro distro-check fuzz bench clean

# The kiln binary and its upstream-named links. Cargo rebuilds only what changed.
kiln:
	@$(CARGO) build --release --locked -q -p kiln-cli
	@mkdir -p $(BIN_DIR)
	@install -m 0755 target/release/kiln $(KILN)
	@ln -sf kiln $(BIN_DIR)/imageconfigvalidator
	@ln -sf kiln $(BIN_DIR)/roast
	@ln -sf kiln $(BIN_DIR)/imagepkgfetcher
	@ln -sf kiln $(BIN_DIR)/imager

validate-image-config: kiln
	@test -n "$(CONFIG_FILE)" || { echo "Must set CONFIG_FILE="; exit 1; }
	$(BIN_DIR)/imageconfigvalidator --input=$(CONFIG_FILE) --dir=$(CONFIG_BASE_DIR) \
		--log-level=$(LOG_LEVEL) --log-color=$(LOG_COLOR)

# `make image` = `kiln build`: validate, fetch, compose, roast into out/images/<config>/.
# Without CONFIG_FILE it builds the offline demo from the sample repository (built if needed);
# with one, the sources are upstream's: out/RPMS when it exists, REPO_LIST .repo files, and the
# Azure Linux repositories unless DISABLE_UPSTREAM_REPOS=y.
RELEASE_VERSION ?=
IMAGE_TAG       ?=
BUILD_ID        ?=
IMAGE_SOURCES = $(if $(CONFIG_FILE),,--repo $(OUT_DIR)/sample-repo --disable-upstream-repos) \
	$(if $(wildcard $(OUT_DIR)/RPMS),--rpm-dir $(OUT_DIR)/RPMS) \
	$(foreach f,$(REPO_LIST),--repo-file $(f)) \
	$(if $(filter y,$(DISABLE_UPSTREAM_REPOS)),--disable-upstream-repos)
image: kiln $(if $(CONFIG_FILE),,sample-repo)
	@scripts/install-host-deps.sh build
	@$(KILN) build --config $(IMAGE_CONFIG) $(IMAGE_SOURCES) \
		--release-version "$(RELEASE_VERSION)" --image-tag "$(IMAGE_TAG)" --build-number "$(BUILD_ID)"

iso: kiln
	@test -n "$(CONFIG_FILE)" || { echo "Must set CONFIG_FILE="; exit 1; }
	$(KILN) validate --base-dir $(CONFIG_BASE_DIR) $(CONFIG_FILE)
	@echo "kiln: ISO installers are not implemented yet; no ISO was built." >&2; exit 1

host-deps:
	@scripts/install-host-deps.sh test build sample-repo boot

# The offline sample RPM repository (rebuilt only when its inputs change).
sample-repo:
	@scripts/install-host-deps.sh sample-repo
	@sample-repo/build.sh $(OUT_DIR)/sample-repo

# The realistic distribution: Azure Linux 3.0 package names over Debian 12 binaries, in out/RPMS
# (where `make image` looks). Rebuilt only when the package map, the builder or a Debian version
# changes; downloads are cached in /var/cache/kiln/debs. docs/azl-distro.md.
distro:
	@scripts/install-host-deps.sh distro
	@$(PYTHON) azl-distro/build.py --out $(OUT_DIR)/RPMS

distro-check: distro kiln
	tests/azl-distro-check.sh $(OUT_DIR)/RPMS

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -q -- -D warnings

test: host-deps lint kiln sample-repo
	$(CARGO) test --workspace --locked
	$(PYTHON) tests/check_schema.py $(KILN)
	tests/sample-repo-check.sh $(OUT_DIR)/sample-repo

# Fuzz a parser: FUZZ_TARGET=config|kickstart|verify|rpmdep|repodata|rpmheader|cpio (needs `cargo install cargo-fuzz`; the
# stable toolchain is used in bootstrap mode).
FUZZ_TARGET ?= config
FUZZ_SECONDS ?= 600
FUZZ_FLAGS_config := -dict=config.dict
FUZZ_FLAGS_verify := -max_len=4300000
fuzz:
	mkdir -p fuzz/corpus/$(FUZZ_TARGET)
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O $(FUZZ_TARGET) corpus/$(FUZZ_TARGET) seeds/$(FUZZ_TARGET) -- \
		$(FUZZ_FLAGS_$(FUZZ_TARGET)) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

bench: kiln
	scripts/bench-validate.sh $(KILN)
	scripts/bench-formats.sh $(KILN)
	scripts/bench-resolve.sh $(KILN)
	scripts/bench-build.sh $(KILN)

clean:
	rm -rf $(OUT_DIR)
