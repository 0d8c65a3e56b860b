# benchmarks: `make bench` runs bench/*.sh, which print the README's tables
# (medians, with the references measured in the same run); the programs they
# build on demand, with the release flags.
bench: deps-bench all
	@for f in bench/*.sh; do [ -f "$$f" ] && bash "$$f"; done

deps-bench:
	@scripts/deps.sh bench

# The stamp kernel against pixman (libpixman-1-dev), bench/stamp.sh.
$(B)/bench/kernel: bench/kernel.c $(HEADER)
	$(call program,$(CC),$(OPT) $(shell pkg-config --cflags pixman-1),$(shell pkg-config --libs pixman-1))

# The whole decode -> stamp -> encode pipeline, bench/pipeline.sh.
$(B)/bench/pipeline: bench/pipeline.c $(HEADER) $(B)/assets/stamp_png.h
	$(call program,$(CC),$(OPT))

# The Go sample's stamping code, the reference of bench/pipeline.sh.
$(B)/bench/gostamp: bench/gostamp/main.go
	@mkdir -p $(@D) $(B)/go
	GOCACHE=$(abspath $(B))/go/cache GOPATH=$(abspath $(B))/go/path GO111MODULE=off GOFLAGS= go build -o $@ ./bench/gostamp

# The signer, bench/sigv4.sh.
$(B)/bench/sigv4: bench/sigv4.c $(HEADER)
	$(call program,$(CC),$(OPT))

# The latency stand-in of bench/pipeline.sh's workers table (every S3 request held N ms).
$(B)/bench/delayproxy: bench/delayproxy.c
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) -O2 -o $@ $< -pthread
