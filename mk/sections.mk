# Section switches: tests/unit/sections_check.c built for each of the 16
# combinations of SPIM_NO_S3/EVENTS/IMAGE/LAMBDA, linked with only what the
# sections left in need (base+crypto+sigv4: libc; s3: libcurl; events: cJSON;
# image: stb + zlib; lambda: libcurl), and run. The libc-only build uses the
# bare command line the manual promises. tests/unit/include_order.c: the
# implementation after <stdio.h> builds under gnu99 and stops with the
# header's own #error under strict c99.
SECTION_COMBOS = $(foreach s,0 1,$(foreach e,0 1,$(foreach i,0 1,$(foreach l,0 1,$(s)$(e)$(i)$(l)))))

$(B)/test/sections/%: tests/unit/sections_check.c $(HEADER)
	@mkdir -p $(@D)
	@c=$*; s=$$(echo $$c | cut -c1); e=$$(echo $$c | cut -c2); i=$$(echo $$c | cut -c3); l=$$(echo $$c | cut -c4); defs= pkgs=; \
	if [ $$s = 1 ]; then defs="$$defs -DSPIM_NO_S3"; else pkgs="$$pkgs libcurl"; fi; \
	if [ $$e = 1 ]; then defs="$$defs -DSPIM_NO_EVENTS"; else pkgs="$$pkgs libcjson"; fi; \
	if [ $$i = 1 ]; then defs="$$defs -DSPIM_NO_IMAGE"; else pkgs="$$pkgs stb zlib"; fi; \
	if [ $$l = 1 ]; then defs="$$defs -DSPIM_NO_LAMBDA"; else pkgs="$$pkgs libcurl"; fi; \
	if [ -z "$$pkgs" ]; then flags= libs=; else flags=$$(pkg-config --cflags $$pkgs); libs="$$(pkg-config --libs $$pkgs) -lm"; fi; \
	echo "sections $$c:$$defs -> $${pkgs:- libc only}"; \
	$(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -I. $$defs $$flags -o $@ $< $$libs && $@ > /dev/null

$(B)/test/include_order: tests/unit/include_order.c $(HEADER)
	@mkdir -p $(@D)
	$(CC) -std=gnu99 $(WARN) -I. -o $@ $<
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -I. -o $@ $<
	@if $(CC) -std=c99 $(WARN) -I. -o $@.strict $< 2> $@.err; then \
		echo "include_order: strict c99 after <stdio.h> built, expected the header's #error"; exit 1; fi
	@grep -q 'sparta_imager.h: a system header included before the implementation hid POSIX' $@.err || \
		{ echo "include_order: strict c99 failed without the header's #error:"; head -5 $@.err; exit 1; }
	$@ > /dev/null

.PHONY: check-sections
check-sections: $(addprefix $(B)/test/sections/,$(SECTION_COMBOS)) $(B)/test/include_order
