# libFuzzer targets: tests/fuzz/fuzz_NAME.c -> build/fuzz/fuzz_NAME.
# `make fuzz FUZZ_SECONDS=N` runs each for N seconds and prints a table;
# `make test` replays the seed and regression corpora and runs a short smoke
# (tests/it/it_fuzz.sh), a valgrind pass (tests/it/it_valgrind.sh) and the linters
# (tests/it/it_lint.sh).
FUZZ_SRC     = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    = $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 60
# shift-base stays recoverable so that tests/fuzz/ubsan.supp can silence the
# one report inside stb_image_write (see that file); every other UBSan
# report stops the run (halt_on_error in fuzz_common.h).
FUZZ_FLAGS   = -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined -fsanitize-recover=shift-base

$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(HEADER)
	$(call program,$(CLANG),$(FUZZ_FLAGS))

# Plain programs beside them: seed (writes the seed corpora) and bad_inputs
# (prints every bad input the project answers, with the message users see).
$(B)/fuzz/seed $(B)/fuzz/bad_inputs: $(B)/fuzz/%: tests/fuzz/%.c $(HEADER)
	$(call program,$(CC),$(OPT))

fuzz-build: $(FUZZ_BINS) $(B)/fuzz/seed $(B)/fuzz/bad_inputs

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

deps-fuzz:
	@scripts/deps.sh fuzz

.PHONY: fuzz fuzz-build deps-fuzz
