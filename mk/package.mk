# packaging: a one-file function.zip for the provided.al2023 runtime for every
# Lambda example (imager, presign, hello):
#   make package               build/NAME/function.zip        (x86_64)
#   make package ARCH=arm64    build/arm64/NAME/function.zip  (cross-built)
# The packaged bootstrap is a separate -O2 build linked statically against
# everything but glibc: libcurl (HTTP/1.1 + HTTPS over mbedTLS), mbedTLS,
# cJSON and zlib come from build/third_party/ARCH (scripts/thirdparty.sh,
# rebuilt only when its recipe changes); dead sections are dropped and the
# result stripped. scripts/package.sh checks it (glibc only, GLIBC <= 2.34,
# <= 1 MiB) and writes a reproducible zip holding only `bootstrap`.
# Dev builds (`make`, the tests) stay dynamic against Debian's libraries.
ARCH ?= x86_64
ifeq ($(ARCH),arm64)
PKG_CC   = aarch64-linux-gnu-gcc
PKG_STRIP = aarch64-linux-gnu-strip
PKG_OUT  = $(B)/arm64
else ifeq ($(ARCH),x86_64)
PKG_CC   = $(CC)
PKG_STRIP = strip
PKG_OUT  = $(B)
else
$(error ARCH=$(ARCH): expected x86_64 or arm64)
endif
PKG_OPT     = -O2 -ffunction-sections -fdata-sections
PKG_TP      = $(B)/third_party/$(ARCH)
# -I. and stb's directory only: the cross compiler must not see x86 headers
PKG_CPPFLAGS = -I. -I$(PKG_TP)/include $(shell pkg-config --cflags-only-I stb 2>/dev/null)
PKG_LDFLAGS = -Wl,--gc-sections -Wl,-O1 -Wl,--hash-style=gnu -Wl,--build-id=none
PKG_STATIC  = -L$(PKG_TP)/lib -Wl,-Bstatic -lcurl -lmbedtls -lmbedx509 -lmbedcrypto -lcjson -lz -Wl,-Bdynamic -lm -lpthread
PKG_ZIPS    = $(foreach l,$(LAMBDAS),$(PKG_OUT)/$(l)/function.zip)

.PHONY: package-build third-party
package: $(PKG_ZIPS)
ifeq ($(ARCH),arm64)
# The SAM template for arm64: CodeUri names the arm64 zips (relative to
# build/arm64/), and the Architecture parameter defaults to arm64.
package: $(PKG_OUT)/template.yaml
$(PKG_OUT)/template.yaml: examples/imager/template.yaml
	@mkdir -p $(@D)
	sed -e 's|CodeUri: \.\./\.\./build/|CodeUri: |' \
	    -e '/^  Architecture:/,/Default:/s/Default: x86_64/Default: arm64/' $< > $@
endif
third-party: $(PKG_TP)/stamp
# check-build (mk/test.mk) builds the zips of both architectures for the tests
package-build:
	@$(MAKE) --no-print-directory package ARCH=x86_64
	@$(MAKE) --no-print-directory package ARCH=arm64

# The script keeps its own stamp (recipe hash + Debian versions) and returns
# at once when the libraries are current.
$(PKG_TP)/stamp: scripts/thirdparty.sh
	@scripts/thirdparty.sh $(ARCH) $(PKG_TP)

$(PKG_OUT)/package/%/bootstrap: examples/%/main.c $(HEADER) $(PKG_TP)/stamp
	@mkdir -p $(@D)
	$(PKG_CC) $(STD) $(WARN) $(PKG_OPT) $(PKG_CPPFLAGS) -o $@ $< $(PKG_LDFLAGS) $(PKG_STATIC)
	$(PKG_STRIP) --strip-all $@

.PRECIOUS: $(PKG_OUT)/package/%/bootstrap
$(PKG_OUT)/package/imager/bootstrap: $(B)/assets/stamp_png.h examples/imager/config.h

$(PKG_OUT)/%/function.zip: $(PKG_OUT)/package/%/bootstrap scripts/package.sh
	@scripts/package.sh $< $@

# bench/coldstart.sh measures the packaged bootstraps of both architectures
bench: package-build
