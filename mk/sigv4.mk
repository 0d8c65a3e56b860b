# sigv4 section: the JSON-lines driver of the signer (tests/sigv4_tool.c,
# built by the Makefile's build/test/NAME rule) that tests/it_botocore.sh
# compares with botocore.
check-build: $(B)/test/sigv4_tool
