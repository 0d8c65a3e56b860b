# image section: the programs in tools/ (mkstamp draws the default stamp,
# bin2h embeds it as a C array, mksamples and mkjpeg make test photos,
# imgcheck checks results) and the embedded stamp the imager and the stamp
# CLI compile in.
$(B)/tools/%: tools/%.c $(HEADER)
	$(call program,$(CC),$(OPT))

$(B)/assets/stamp.png: $(B)/tools/mkstamp
	@mkdir -p $(@D)
	$(B)/tools/mkstamp $@

$(B)/assets/stamp_png.h: $(B)/assets/stamp.png $(B)/tools/bin2h
	$(B)/tools/bin2h spim_stamp_png $< $@

$(B)/stamp: $(B)/assets/stamp_png.h
$(B)/imager/bootstrap: $(B)/assets/stamp_png.h

# test_jpeg reads coefficients back through libjpeg (libjpeg62-turbo-dev):
# only this test links it.
$(addsuffix /test_jpeg,$(addprefix $(B)/test/,gcc clang san)): PKG_LIBS += -ljpeg

# build/stamp compiles only the image section (SPIM_NO_S3/EVENTS/LAMBDA)
# with WebP and GIF: it links zlib, libwebp and giflib and nothing else.
$(B)/stamp: private PKG_LIBS = $(shell pkg-config --libs zlib 2>/dev/null) -lm $(FMT_LIBS)

# test_webp_gif turns SPIM_WEBP and SPIM_GIF on (and skips its cases when
# built with -DSPIM_TEST_NO_FORMATS, which check-sections does).
$(addsuffix /test_webp_gif,$(addprefix $(B)/test/,gcc clang san)): PKG_LIBS += $(FMT_LIBS)
