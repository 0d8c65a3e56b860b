# sparta_imager — build, test, package.   `make help` lists the targets.
CC      ?= cc
CLANG   ?= clang
CXX     ?= g++
PKGS     = libcurl libcjson stb zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs libcurl libcjson zlib 2>/dev/null) -lm -pthread
WARN     = -Wall -Wextra -Wpedantic -Werror
STD      = -std=c99
OPT     ?= -O2 -g
SAN      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
CPPFLAGS = -I. $(PKG_CFLAGS)
B        = build
HEADER   = sparta_imager.h

# The one compile rule. Every program here is one C file that includes the
# header (and its implementation): $(call program,COMPILER,FLAGS[,LIBS])
# builds $@ from $< against the header's libraries (plus LIBS).
define program
@mkdir -p $(@D)
$(1) $(STD) $(WARN) $(2) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)$(if $(3), $(3))
endef

# examples/NAME/main.c: Lambda functions become build/NAME/bootstrap,
# command-line tools build/NAME.
LAMBDAS = $(notdir $(patsubst %/main.c,%,$(wildcard $(addsuffix /main.c,$(addprefix examples/,imager hello presign)))))
TOOLS   = $(notdir $(patsubst %/main.c,%,$(wildcard $(addsuffix /main.c,$(addprefix examples/,stamp s3)))))
BINS    = $(foreach l,$(LAMBDAS),$(B)/$(l)/bootstrap) $(addprefix $(B)/,$(TOOLS))

.PHONY: all test check-build deps-build deps-test deps-bench demo bench fuzz package clean help
all: $(BINS)

help:
	@echo "make            build every example into build/"
	@echo "make test       install test dependencies, build with gcc+clang+C++, run the suite under ASan+UBSan"
	@echo "make demo       run the whole S3 -> stamp -> S3 path locally"
	@echo "make bench      benchmarks (medians, ratios to references)"
	@echo "make fuzz       libFuzzer targets (FUZZ_SECONDS=N each)"
	@echo "make package    build/*/function.zip for provided.al2023"

deps-build:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test

# Examples: build/NAME/bootstrap (Lambda functions), build/NAME (tools), and
# build/NAME/bootstrap-san, the ASan+UBSan build the integration tests run.
$(B)/%/bootstrap: examples/%/main.c $(HEADER)
	$(call program,$(CC),$(OPT))

$(addprefix $(B)/,$(TOOLS)): $(B)/%: examples/%/main.c $(HEADER)
	$(call program,$(CC),$(OPT))

$(B)/%/bootstrap-san: examples/%/main.c $(HEADER)
	$(call program,$(CLANG),$(SAN))

test: deps-test
	@$(MAKE) --no-print-directory -j2 check-build
	@tests/run.sh $(B)/test/san

clean:
	rm -rf $(B)

# The rest, one fragment per subject, each included by name: mk/test.mk (the
# unit tests, the build checks and check-build, which builds all that `make
# test` runs), mk/sections.mk (the 16 section combinations), mk/image.mk (the
# embedded stamp, image tools), mk/fuzz.mk, mk/bench.mk, mk/package.mk,
# mk/demo.mk, mk/servers.mk. A fragment left out of this list stops make.
MK = mk/test.mk mk/sections.mk mk/image.mk mk/fuzz.mk mk/bench.mk mk/package.mk mk/demo.mk mk/servers.mk
$(if $(filter-out $(MK),$(wildcard mk/*.mk)),$(error Makefile: include $(filter-out $(MK),$(wildcard mk/*.mk)) in MK))
include $(MK)
