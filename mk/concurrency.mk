# Lambda workers (AWS_LAMBDA_MAX_CONCURRENCY): ThreadSanitizer builds of the
# hello and imager functions, which tests/it_concurrency.sh drives with
# several workers at once.
TSAN = -O1 -g -fno-omit-frame-pointer -fsanitize=thread

$(B)/%/bootstrap-tsan: examples/%/main.c $(HEADER)
	$(call program,$(CLANG),$(TSAN))

$(B)/imager/bootstrap-tsan: $(B)/assets/stamp_png.h

check-build: $(B)/hello/bootstrap-tsan $(B)/imager/bootstrap-tsan
