# kiln — the Azure Linux toolkit's image targets, with kiln underneath.
#
#   make image [CONFIG_FILE=…]           build an image (default: imageconfigs/demo-efi.json)
#   make iso CONFIG_FILE=… [UNATTENDED_INSTALLER=y] [ISO_KERNEL_ARGS=…]   build an ISO installer
#   make installer-initrd                the ISO's installer initrd (resources/imageconfigs/iso_initrd.json)
#   make validate-image-config CONFIG_FILE=… [CONFIG_BASE_DIR=…]
#   make test                            install test host packages, lint, run every test
#
# Variables keep upstream's names (scripts/imggen.mk): CONFIG_FILE, CONFIG_BASE_DIR, IMAGE_TAG,
# RELEASE_VERSION, REPO_LIST, DISABLE_UPSTREAM_REPOS, LOG_LEVEL, LOG_COLOR, UNATTENDED_INSTALLER;
# RPMS_DIR (kiln's) is the realistic distribution's folder (default out/RPMS); ISO_KERNEL_ARGS
# (kiln's) are added to the ISO installer's kernel command line (e.g. kiln.target-disk=smallest).

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
# Upstream's LOG_LEVEL as kiln's verbosity: panic/fatal/error/warn → -q, debug/trace → -v.
KILN_VERBOSITY = $(if $(filter panic fatal error warn,$(LOG_LEVEL)),-q,$(if $(filter debug trace,$(LOG_LEVEL)),-v))

# Upstream's image targets need CONFIG_FILE; kiln's `make image` defaults to its offline demo.
IMAGE_CONFIG    = $(or $(CONFIG_FILE),$(DEFAULT_CONFIG))
CONFIG_BASE_DIR ?= $(dir $(IMAGE_CONFIG))

.PHONY: image iso installer-initrd validate-image-config test lint host-deps kiln sample-repo distro distro-check fuzz bench clean clean-downloads clean-cache

# The kiln binary and its upstream-named links; out/tools/{imager,liveinstaller} are copies the
# installer initrd carries (iso_initrd.json names them, as upstream's names its Go tools). Cargo
# rebuilds only what changed, and a file is replaced only when it changed (the initrd depends on
# it). Without SOURCE_DATE_EPOCH: the C dependencies' build scripts rerun when it changes (the cc
# crate watches it), and a reproducible image build must not recompile kiln.
TOOLS_DIR := $(OUT_DIR)/tools
kiln:
	@env -u SOURCE_DATE_EPOCH $(CARGO) build --release --locked -q -p kiln-cli
	@mkdir -p $(BIN_DIR) $(TOOLS_DIR)
	@for f in $(KILN) $(TOOLS_DIR)/imager $(TOOLS_DIR)/liveinstaller; do \
		cmp -s target/release/kiln $$f || { install -m 0755 target/release/kiln $$f.tmp.$$$$ && mv -f $$f.tmp.$$$$ $$f; }; \
	done
	@for t in imageconfigvalidator roast imagepkgfetcher imager isomaker liveinstaller; do ln -sf kiln $(BIN_DIR)/$$t; done

validate-image-config: kiln
	@test -n "$(CONFIG_FILE)" || { echo "Must set CONFIG_FILE="; exit 1; }
	$(BIN_DIR)/imageconfigvalidator --input=$(CONFIG_FILE) --dir=$(CONFIG_BASE_DIR) \
		--log-level=$(LOG_LEVEL) --log-color=$(LOG_COLOR)

# `make image` = `kiln build`: validate, fetch, compose, roast into out/images/<config>/.
# Without CONFIG_FILE it builds the offline demo from the sample repository (built if needed);
# with one, the sources are upstream's: out/RPMS (RPMS_DIR) when it exists, REPO_LIST .repo files, and the
# Azure Linux repositories unless DISABLE_UPSTREAM_REPOS=y. An unchanged build says "up to date"
# and makes nothing; a rebuild that changes only what comes after the package install restores
# the installed packages from out/cache/package-roots (docs/cache.md). KILN_BUILD_FLAGS=--no-cache
# builds everything anew.
KILN_BUILD_FLAGS ?=
# Locally built packages (upstream's RPMS_DIR): the realistic distribution, `make distro`.
RPMS_DIR        ?= $(OUT_DIR)/RPMS
RELEASE_VERSION ?=
IMAGE_TAG       ?=
BUILD_ID        ?=
# SAMPLE_REPO=y (kiln's): build any config from the offline sample repository, e.g.
#   make image CONFIG_FILE=imageconfigs/demo-legacy.json SAMPLE_REPO=y DISABLE_UPSTREAM_REPOS=y
USE_SAMPLE_REPO = $(or $(if $(CONFIG_FILE),,y),$(filter y,$(SAMPLE_REPO)))
IMAGE_SOURCES = $(if $(USE_SAMPLE_REPO),--repo $(OUT_DIR)/sample-repo) \
	$(if $(CONFIG_FILE),,--disable-upstream-repos) \
	$(if $(USE_SAMPLE_REPO),,$(if $(wildcard $(RPMS_DIR)),--rpm-dir $(RPMS_DIR))) \
	$(foreach f,$(REPO_LIST),--repo-file $(f)) \
	$(if $(filter y,$(DISABLE_UPSTREAM_REPOS)),--disable-upstream-repos)
image: kiln $(if $(USE_SAMPLE_REPO),sample-repo)
	@scripts/install-host-deps.sh build
	@$(KILN) build --config $(IMAGE_CONFIG) $(IMAGE_SOURCES) --base-dir $(CONFIG_BASE_DIR) \
		--release-version "$(RELEASE_VERSION)" --image-tag "$(IMAGE_TAG)" --build-number "$(BUILD_ID)" \
		--color $(LOG_COLOR) $(KILN_VERBOSITY) $(KILN_BUILD_FLAGS)

# The installer initrd (upstream's installer-initrd target): a root filesystem with an initrd
# artifact, built from the realistic distribution (RPMS_DIR) with kiln inside it. Rebuilt when
# kiln, a file of resources/ or the distribution's repodata changed.
INITRD_CONFIG  := resources/imageconfigs/iso_initrd.json
INITRD         := $(OUT_DIR)/images/iso_initrd/iso-initrd.img
INITRD_SOURCES = $(if $(wildcard $(RPMS_DIR)),--rpm-dir $(RPMS_DIR)) $(foreach f,$(REPO_LIST),--repo-file $(f)) \
	$(if $(filter y,$(DISABLE_UPSTREAM_REPOS)),--disable-upstream-repos)
installer-initrd: kiln
	@$(MAKE) --no-print-directory $(INITRD)
$(INITRD): $(KILN) $(shell find resources -type f) $(wildcard $(RPMS_DIR)/repodata/repomd.xml)
	@scripts/install-host-deps.sh build
	@$(KILN) build --config $(INITRD_CONFIG) $(INITRD_SOURCES) --build-number "$(BUILD_ID)" \
		--color $(LOG_COLOR) $(KILN_VERBOSITY)

# `make iso` = `kiln iso`: the config's packages fetched, upstream's ISO written (isomaker) into
# out/images/<config>/<config>[-<RELEASE_VERSION><IMAGE_TAG>].iso.
iso: kiln installer-initrd
	@test -n "$(CONFIG_FILE)" || { echo "Must set CONFIG_FILE="; exit 1; }
	@$(KILN) iso --config $(CONFIG_FILE) $(IMAGE_SOURCES) --base-dir $(CONFIG_BASE_DIR) \
		--initrd $(INITRD) --release-version "$(RELEASE_VERSION)" --image-tag "$(IMAGE_TAG)" \
		$(if $(filter y,$(UNATTENDED_INSTALLER)),--unattended-install) \
		$(foreach a,$(ISO_KERNEL_ARGS),--kernel-arg '$(a)') \
		--color $(LOG_COLOR) $(KILN_VERBOSITY)

host-deps:
	@scripts/install-host-deps.sh test build sample-repo boot

# The offline sample RPM repository (rebuilt only when its inputs change). Make compares the
# stamp with the inputs and with apt's package lists (new Debian versions arrive only through
# them), so an unchanged repository costs no work; build.sh checks its full key when it runs.
SAMPLE_REPO_STAMP := $(OUT_DIR)/sample-repo/.kiln-sample-repo
SAMPLE_REPO_INPUTS := $(shell find sample-repo -type f) $(wildcard /var/lib/apt/lists)
sample-repo: $(SAMPLE_REPO_STAMP)
$(SAMPLE_REPO_STAMP): $(SAMPLE_REPO_INPUTS)
	@scripts/install-host-deps.sh sample-repo
	@sample-repo/build.sh $(OUT_DIR)/sample-repo
	@touch $@

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

test: host-deps lint kiln sample-repo distro
	$(CARGO) test --workspace --locked
	$(PYTHON) tests/check_schema.py $(KILN)
	tests/sample-repo-check.sh $(OUT_DIR)/sample-repo
	tests/make-check.sh

# Fuzz a parser: FUZZ_TARGET=config|kickstart|verify|imageread|rpmdep|repodata|rpmheader|cpio (needs `cargo install cargo-fuzz`; the
# stable toolchain is used in bootstrap mode).
FUZZ_TARGET ?= config
FUZZ_SECONDS ?= 600
FUZZ_FLAGS_config := -dict=config.dict
FUZZ_FLAGS_verify := -max_len=4300000
# imageread reads on a second thread, whose thread-local destructor registration LeakSanitizer
# reports as a leak (during the run and again at exit); leaks are not what this target looks for.
FUZZ_FLAGS_imageread := -max_len=4300000 -detect_leaks=0
FUZZ_ENV_imageread := ASAN_OPTIONS=detect_leaks=0
fuzz:
	mkdir -p fuzz/corpus/$(FUZZ_TARGET)
	cd fuzz && $(FUZZ_ENV_$(FUZZ_TARGET)) RUSTC_BOOTSTRAP=1 cargo fuzz run -O $(FUZZ_TARGET) corpus/$(FUZZ_TARGET) seeds/$(FUZZ_TARGET) -- \
		$(FUZZ_FLAGS_$(FUZZ_TARGET)) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

bench: kiln distro
	@scripts/install-host-deps.sh test
	scripts/bench-validate.sh $(KILN)
	scripts/bench-formats.sh $(KILN)
	scripts/bench-resolve.sh $(KILN)
	scripts/bench-build.sh $(KILN)
	scripts/bench-build.sh $(KILN) 3 tests/azl-compat/imageconfigs/core-efi.json $(OUT_DIR)/RPMS
	scripts/bench-rebuild.sh $(KILN)
	scripts/bench-sandbox.sh
	scripts/bench-encrypt.sh
	scripts/bench-iso.sh

# Downloads stay: they live in the machine-wide cache (/var/cache/kiln, or $KILN_DEB_CACHE),
# which `make clean-downloads` empties. The package-root cache is in out/ and goes with it;
# `make clean-cache` removes only it.
clean:
	rm -rf $(OUT_DIR)

clean-cache:
	rm -rf $(OUT_DIR)/cache/package-roots

clean-downloads:
	rm -rf $(or $(KILN_DEB_CACHE),/var/cache/kiln/debs) $(or $(KILN_DISTRO_CACHE),/var/cache/kiln/azl-distro)
