# sparta_imager — build, test, package.   `make help` lists the targets.
CC      ?= cc
CLANG   ?= clang
CXX     ?= g++
PKGS     = libcurl libcjson stb zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs libcurl libcjson zlib 2>/dev/null) -lm
# The opt-in formats (SPIM_WEBP, SPIM_GIF): what a program that turns them on links.
FMT_LIBS   := $(shell pkg-config --libs libwebpmux libwebpdemux libwebp 2>/dev/null) -lgif
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

TEST_SRC   = $(wildcard tests/test_*.c)
TEST_NAMES = $(patsubst tests/%.c,%,$(TEST_SRC))
TEST_GCC   = $(addprefix $(B)/test/gcc/,$(TEST_NAMES))
TEST_CLANG = $(addprefix $(B)/test/clang/,$(TEST_NAMES))
TEST_SAN   = $(addprefix $(B)/test/san/,$(TEST_NAMES))

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

# Unit tests: tests/test_NAME.c, one per section, with gcc, clang, and clang
# under ASan+UBSan (the build tests/run.sh runs).
$(B)/test/gcc/%: tests/%.c tests/spim_test.h $(HEADER)
	$(call program,gcc,$(OPT))

$(B)/test/clang/%: tests/%.c tests/spim_test.h $(HEADER)
	$(call program,$(CLANG),$(OPT))

$(B)/test/san/%: tests/%.c tests/spim_test.h $(HEADER)
	$(call program,$(CLANG),$(SAN))

# Helper programs of the tests (tests/NAME.c -> build/test/NAME), e.g. the
# SigV4 driver tests/it_botocore.sh uses.
$(B)/test/%: tests/%.c $(HEADER)
	$(call program,$(CC),$(OPT))

# The whole header, implementation included, compiled as C++.
$(B)/test/cxx_check.o: tests/cxx_check.cpp $(HEADER)
	@mkdir -p $(@D)
	$(CXX) -std=c++11 $(WARN) $(CPPFLAGS) -c -o $@ $<

# ... and with SPARTA_IMAGER_STATIC (every function static, most unused),
# with both compilers.
$(B)/test/static_check: tests/static_check.c $(HEADER)
	$(call program,$(CC),$(OPT))
	$(call program,$(CLANG),$(OPT))

# ... and the example in its top comment compiles as written.
$(B)/test/manual_example.c: $(HEADER)
	@mkdir -p $(@D)
	sed -n '/--- example begin ---/,/--- example end ---/p' $< | sed '1d;$$d;s/^      //' > $@
$(B)/test/manual_example: $(B)/test/manual_example.c
	$(call program,$(CC),$(OPT))

check-build: $(TEST_GCC) $(TEST_CLANG) $(TEST_SAN) $(B)/test/cxx_check.o $(B)/test/static_check $(B)/test/manual_example $(BINS)

test: deps-test
	@$(MAKE) --no-print-directory -j2 check-build
	@tests/run.sh $(B)/test/san

clean:
	rm -rf $(B)

# The rest, one fragment per subject: mk/image.mk (the embedded stamp, image
# tools), mk/imager.mk and mk/lambda.mk (their test builds), mk/sigv4.mk,
# mk/fuzz.mk, mk/bench.mk, mk/package.mk, mk/demo.mk, mk/servers.mk.
-include mk/*.mk
