# imager application: sanitizer builds of the imager and presign functions,
# the sample-photo generator and the image checker used by tests/it_imager.sh.
$(B)/imager/bootstrap-san: $(B)/assets/stamp_png.h
$(B)/%/bootstrap-san: examples/%/main.c $(HEADER)
	@mkdir -p $(@D)
	$(CLANG) $(STD) $(WARN) $(SAN) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)

check-build: $(B)/imager/bootstrap-san $(B)/presign/bootstrap-san $(B)/tools/mksamples $(B)/tools/imgcheck
