# image section: the default stamp artwork (drawn by tools/mkstamp at build
# time, embedded as a C array), test-image generator, kernel benchmarks.
$(B)/tools/%: tools/%.c $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)

$(B)/assets/stamp.png: $(B)/tools/mkstamp
	@mkdir -p $(@D)
	$(B)/tools/mkstamp $@

$(B)/assets/stamp_png.h: $(B)/assets/stamp.png $(B)/tools/bin2h
	$(B)/tools/bin2h spim_stamp_png $< $@

$(B)/stamp: $(B)/assets/stamp_png.h
$(B)/imager/bootstrap: $(B)/assets/stamp_png.h

# Benchmarks (bench/stamp.sh builds these on demand; pixman from libpixman-1-dev).
$(B)/bench/kernel: bench/kernel.c $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(CPPFLAGS) $(shell pkg-config --cflags pixman-1) -o $@ $< $(PKG_LIBS) $(shell pkg-config --libs pixman-1)

$(B)/bench/pipeline: bench/pipeline.c $(HEADER) $(B)/assets/stamp_png.h
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)

$(B)/bench/gostamp: bench/gostamp/main.go
	@mkdir -p $(@D) $(B)/go
	GOCACHE=$(abspath $(B))/go/cache GOPATH=$(abspath $(B))/go/path GO111MODULE=off GOFLAGS= go build -o $@ ./bench/gostamp

# test_jpeg reads coefficients back through libjpeg (libjpeg62-turbo-dev):
# only this test links it.
$(B)/test/gcc/test_jpeg: tests/test_jpeg.c tests/spim_test.h $(HEADER)
	@mkdir -p $(@D)
	gcc $(STD) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $< $(PKG_LIBS) -ljpeg

$(B)/test/clang/test_jpeg: tests/test_jpeg.c tests/spim_test.h $(HEADER)
	@mkdir -p $(@D)
	$(CLANG) $(STD) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $< $(PKG_LIBS) -ljpeg

$(B)/test/san/test_jpeg: tests/test_jpeg.c tests/spim_test.h $(HEADER)
	@mkdir -p $(@D)
	$(CLANG) $(STD) $(WARN) $(SAN) $(CPPFLAGS) -o $@ $< $(PKG_LIBS) -ljpeg
