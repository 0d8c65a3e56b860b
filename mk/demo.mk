# demo: the whole S3 -> stamp -> S3 path on this machine (scripts/demo.sh:
# radosgw, the Runtime API emulator, the packaged bootstraps), and the image
# helper it shares with bench/pipeline.sh.
demo:
	@SPIM_BUILD=$(abspath $(B)) scripts/demo.sh

$(B)/bench/pipeline_tool: bench/pipeline_tool.c
	@mkdir -p $(@D)
	$(CC) $(STD) -Wall -Wextra -Wno-unused-function -Wno-missing-braces -O2 $(CPPFLAGS) -o $@ $< -lm
