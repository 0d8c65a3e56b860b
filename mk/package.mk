# packaging: build/NAME/function.zip for the provided.al2023 runtime (x86_64)
# for every Lambda example (imager, presign, hello). The packaged bootstrap
# is a separate -O2 build with DT_RPATH $ORIGIN/lib (RPATH, unlike RUNPATH,
# also serves the libraries' own dependencies and wins over LD_LIBRARY_PATH),
# stripped; scripts/package.sh copies every shared library it needs except
# glibc's into lib/, checks the result and writes a reproducible zip.
PKG_OPT   = -O2
PKG_RPATH = -Wl,-rpath,'$$ORIGIN/lib' -Wl,--disable-new-dtags
PKG_ZIPS  = $(foreach l,$(LAMBDAS),$(B)/$(l)/function.zip)

.PHONY: package-build
package: $(PKG_ZIPS)
package-build: $(PKG_ZIPS)
check-build: package-build

$(B)/package/%/bootstrap: examples/%/main.c $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(PKG_OPT) $(CPPFLAGS) -o $@ $< $(PKG_RPATH) $(PKG_LIBS)
	strip --strip-all $@

.PRECIOUS: $(B)/package/%/bootstrap
$(B)/package/imager/bootstrap: $(B)/assets/stamp_png.h

$(B)/%/function.zip: $(B)/package/%/bootstrap scripts/package.sh
	@scripts/package.sh $< $@
