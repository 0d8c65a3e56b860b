# sigv4: the JSON-lines driver of the signer used by tests/it_botocore.sh.
$(B)/test/sigv4_tool: tests/sigv4_tool.c $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)

check-build: $(B)/test/sigv4_tool

# Benchmark driver for bench/sigv4.sh (built with the release flags).
$(B)/bench/sigv4_bench: tests/sigv4_bench.c $(HEADER)
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $< $(PKG_LIBS)
