# s3: start/stop the test radosgw by hand (tests/run.sh does it for a run).
# `make servers` leaves it running for later runs; `make servers-stop` stops
# it whoever started it.
.PHONY: servers servers-stop
servers:
	@tests/it/servers.sh start && cat $(B)/servers.env
servers-stop:
	@SPIM_STOP_SERVERS=1 tests/it/servers.sh stop
