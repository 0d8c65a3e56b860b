# lambda: an ASan+UBSan build of the hello function, for tests/it_lambda.sh.
$(B)/hello/bootstrap-san: examples/hello/main.c $(HEADER)
	@mkdir -p $(@D)
	$(CLANG) $(STD) $(WARN) $(SAN) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)

check-build: $(B)/hello/bootstrap-san
