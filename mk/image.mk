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
