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
$(B)/imager/bootstrap $(B)/imager/bootstrap-san: $(B)/assets/stamp_png.h examples/imager/config.h

# The text stamp's default font: DejaVu Sans from Debian's fonts-dejavu-core,
# cut by fontTools (python3-fonttools) to Latin-1 plus the euro, dashes,
# quotes, the ellipsis and (C)/TM, with its kerning and its missing-glyph
# box: 22 KB embedded instead of 740 KB. Not committed: made from the package.
FONT_SRC ?= /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
FONT_UNICODES = U+0020-007E,U+00A0-00FF,U+2013-2014,U+2018-201E,U+2022,U+2026,U+20AC,U+2122
$(B)/assets/font.ttf: $(FONT_SRC)
	@mkdir -p $(@D)
	/usr/bin/python3 -m fontTools.subset $< --unicodes="$(FONT_UNICODES)" --no-hinting \
	    --layout-features=kern --notdef-outline --drop-tables+=FFTM --output-file=$@

$(B)/assets/font_ttf.h: $(B)/assets/font.ttf $(B)/tools/bin2h
	$(B)/tools/bin2h spim_font_ttf $< $@

$(B)/stamp $(B)/imager/bootstrap $(B)/imager/bootstrap-san: $(B)/assets/font_ttf.h

# The JPEG tests read coefficients back through libjpeg (libjpeg62-turbo-dev,
# shared helpers in tests/unit/jpeg_lib.h): only they link it.
JPEG_TESTS := $(foreach t,test_jpeg test_jpeg_progressive test_jpeg_recode,\
                $(addsuffix /$(t),$(addprefix $(B)/test/,gcc clang san)))
$(JPEG_TESTS): PKG_LIBS += -ljpeg
$(JPEG_TESTS): tests/unit/jpeg_lib.h

# build/stamp compiles only the image section (SPIM_NO_S3/EVENTS/LAMBDA)
# with WebP and GIF: it links zlib, libwebp and giflib and nothing else.
$(B)/stamp: private PKG_LIBS = $(shell pkg-config --libs zlib 2>/dev/null) -lm $(FMT_LIBS)

# test_webp_gif turns SPIM_WEBP and SPIM_GIF on (and skips its cases when
# built with -DSPIM_TEST_NO_FORMATS, which check-sections does).
$(addsuffix /test_webp_gif,$(addprefix $(B)/test/,gcc clang san)): PKG_LIBS += $(FMT_LIBS)

# The imager keeps WebP as WebP and GIF as GIF: SPIM_WEBP and SPIM_GIF come
# from here (its main.c is held to 250 lines), with their libraries.
$(addprefix $(B)/imager/,bootstrap bootstrap-san bootstrap-tsan): private PKG_LIBS += $(FMT_LIBS)
$(addprefix $(B)/imager/,bootstrap bootstrap-san bootstrap-tsan): private CPPFLAGS += -DSPIM_WEBP -DSPIM_GIF
