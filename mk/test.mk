# Tests: what `make test` builds (check-build, owned here and nowhere else)
# before tests/run.sh runs it. The layout:
#   tests/unit/test_NAME.c  one per section of the header, built with gcc,
#                           clang, and clang under ASan+UBSan (the build
#                           tests/run.sh runs): build/test/{gcc,clang,san}/
#   tests/unit/*.c, .cpp    build checks: the header as C++, with
#                           SPARTA_IMAGER_STATIC, the section combinations
#                           (mk/sections.mk), the include order
#   tests/it/it_NAME.sh     integration scripts, with their helpers
#                           it_NAME.py / it_NAME.c (build/test/it_NAME)
#   tests/fuzz/             libFuzzer targets (mk/fuzz.mk)
TEST_SRC   = $(wildcard tests/unit/test_*.c)
TEST_NAMES = $(patsubst tests/unit/%.c,%,$(TEST_SRC))
TEST_GCC   = $(addprefix $(B)/test/gcc/,$(TEST_NAMES))
TEST_CLANG = $(addprefix $(B)/test/clang/,$(TEST_NAMES))
TEST_SAN   = $(addprefix $(B)/test/san/,$(TEST_NAMES))

$(B)/test/gcc/%: tests/unit/%.c tests/unit/spim_test.h $(HEADER)
	$(call program,gcc,$(OPT))

$(B)/test/clang/%: tests/unit/%.c tests/unit/spim_test.h $(HEADER)
	$(call program,$(CLANG),$(OPT))

$(B)/test/san/%: tests/unit/%.c tests/unit/spim_test.h $(HEADER)
	$(call program,$(CLANG),$(SAN))

# The C helpers of integration scripts: tests/it/it_NAME.c -> build/test/it_NAME
# (it_botocore: the JSON-lines driver of the signer that it_botocore.py
# compares with botocore).
$(B)/test/it_%: tests/it/it_%.c $(HEADER)
	$(call program,$(CC),$(OPT))

# The whole header, implementation included, compiled as C++.
$(B)/test/cxx_check.o: tests/unit/cxx_check.cpp $(HEADER)
	@mkdir -p $(@D)
	$(CXX) -std=c++11 $(WARN) $(CPPFLAGS) -c -o $@ $<

# ... and with SPARTA_IMAGER_STATIC (every function static, most unused),
# with both compilers.
$(B)/test/static_check: tests/unit/static_check.c $(HEADER)
	$(call program,$(CC),$(OPT))
	$(call program,$(CLANG),$(OPT))

# ... and the example in its top comment compiles as written.
$(B)/test/manual_example.c: $(HEADER)
	@mkdir -p $(@D)
	sed -n '/--- example begin ---/,/--- example end ---/p' $< | sed '1d;$$d;s/^      //' > $@
$(B)/test/manual_example: $(B)/test/manual_example.c
	$(call program,$(CC),$(OPT))

# What the integration scripts run: the sanitizer builds of the Lambda
# examples (it_lambda, it_imager), the sample-photo generator and the image
# checker (it_imager, it_race), the signer's driver (it_botocore), the
# metadata reader (it_metadata), the fuzz
# targets (it_fuzz, it_docs) and the packages of both architectures
# (it_package, it_template).
IT_BUILD = $(foreach l,$(LAMBDAS),$(B)/$(l)/bootstrap-san) $(B)/tools/mksamples $(B)/tools/imgcheck \
           $(B)/test/it_botocore $(B)/hello/bootstrap-tsan $(B)/imager/bootstrap-tsan \
           $(B)/test/it_metadata

# Lambda workers (AWS_LAMBDA_MAX_CONCURRENCY): ThreadSanitizer builds of the
# hello and imager functions, which tests/it/it_concurrency.sh drives with
# several workers at once.
TSAN = -O1 -g -fno-omit-frame-pointer -fsanitize=thread

$(B)/%/bootstrap-tsan: examples/%/main.c $(HEADER)
	$(call program,$(CLANG),$(TSAN))

$(B)/imager/bootstrap-tsan: $(B)/assets/stamp_png.h

check-build: $(TEST_GCC) $(TEST_CLANG) $(TEST_SAN) $(B)/test/cxx_check.o $(B)/test/static_check \
             $(B)/test/manual_example check-sections $(BINS) $(IT_BUILD) fuzz-build package-build
