# The metadata policy's integration test (tests/it_metadata.sh) reads files
# back with the project's parser: build/test/meta_dump.
check-build: $(B)/test/meta_dump
