#!/bin/bash
# The real servers the tests talk to: a single-node Ceph radosgw (1 mon, 1
# OSD, cephx off) on 127.0.0.1, which verifies SigV4 like S3 does.
#   tests/it/servers.sh start|stop|status
#
# start   reuses a healthy instance (pid files alive + radosgw answering HTTP),
#         else creates one from scratch under $SPIM_BUILD/radosgw; then writes
#         $SPIM_BUILD/servers.env (export lines sourced by tests/run.sh).
#         Safe to run concurrently: start/stop serialise on a lock file.
# stop    stops the instance only when SPIM_STOP_SERVERS=1, or when the
#         calling run started it and no other live run registered as a user.
#         A "run" is identified by SPIM_SERVERS_OWNER, default the caller's
#         PID ($PPID: tests/run.sh calls start and stop from the same shell).
#         SPIM_KEEP_SERVERS=1 makes stop a no-op whatever else is set.
# status  prints whether the instance is healthy (exit 0) or not (exit 1).
#
# Environment: SPIM_BUILD (default ./build), SPIM_RGW_PORT (default 7480),
# SPIM_MON_PORT (default 6789), SPIM_RGW_STORE (memstore|bluestore, default
# memstore: the fastest start and nothing on disk worth keeping).
set -u
cd "$(dirname "$0")/../.."
BUILD=${SPIM_BUILD:-$PWD/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
D=$BUILD/radosgw
ENV_FILE=$BUILD/servers.env
# The daemons must not inherit the lock's descriptor (they would hold the
# lock for their whole life): every launch closes fd 9.
LOCK=$BUILD/servers.lock
RGW_PORT=${SPIM_RGW_PORT:-7480}
MON_PORT=${SPIM_MON_PORT:-6789}
STORE=${SPIM_RGW_STORE:-memstore}
OWNER=${SPIM_SERVERS_OWNER:-$PPID}
ENDPOINT=http://127.0.0.1:$RGW_PORT

# Fixed test users: the keys are test-only values for a server bound to
# 127.0.0.1. The secrets carry '/' and '+' on purpose (signing must cope).
ACCESS1=SPIMTESTACCESSKEY001
SECRET1='spimTestSecret/Key+One0123456789abcdefgh'
ACCESS2=SPIMTESTACCESSKEY002
SECRET2='spimTestSecret/Key+Two0123456789abcdefgh'

log() { echo "servers.sh: $*" >&2; }

# A pid file names a live process of ours: its command line mentions our
# ceph.conf, so a recycled PID is never mistaken for (or killed as) ours.
pid_ours() {  # pidfile
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$D/ceph.conf"
}

healthy() {
    local p
    for p in mon osd rgw; do pid_ours "$D/run/$p.pid" || return 1; done
    curl -s -o /dev/null --max-time 3 "$ENDPOINT/" || return 1
    [ -f "$D/ready" ] && [ -f "$ENV_FILE" ]
}

kill_ours() {
    local p pid i
    for p in rgw osd mon; do
        if pid_ours "$D/run/$p.pid"; then
            pid=$(cat "$D/run/$p.pid")
            kill "$pid" 2>/dev/null
            for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null
        fi
        rm -f "$D/run/$p.pid"
    done
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_conf() {
    local fsid=$1
    cat > "$D/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
keyring = $D/keyring
[mon]
mon cluster log file = $D/log/\$cluster.\$channel.log
mon data = $D/mon.\$id
mon data avail crit = 1
mon data avail warn = 2
[osd]
osd crush update on start = false
osd class update on start = false
osd data = $D/osd.\$id
osd objectstore = $STORE
memstore device bytes = 2147483648
bluestore block path = $D/osd.\$id.block
bluestore block create = true
bluestore block size = 4294967296
bluestore block db create = false
bluestore block wal create = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 67108864
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $D/rgw.a
rgw enable usage log = false
rgw thread pool size = 64
EOF
}

wait_for() {  # tries interval command...
    local n=$1 dt=$2 i; shift 2
    for i in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep "$dt"; done
    return 1
}

create() {
    local fsid osd_uuid id C
    for p in "$RGW_PORT" "$MON_PORT"; do
        if port_busy "$p"; then log "port $p is in use by another program"; return 1; fi
    done
    rm -rf "$D"
    mkdir -p "$D"/{run,log,mon.a,osd.0,rgw.a}
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid"
    C=(-c "$D/ceph.conf")
    ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null || return 1
    monmaptool --create --fsid "$fsid" --addv a "v1:127.0.0.1:$MON_PORT" "$D/monmap" >/dev/null || return 1
    ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" || return 1
    setsid nohup ceph-mon "${C[@]}" -i a -f > "$D/log/mon.out" 2>&1 < /dev/null 9>&- &
    echo $! > "$D/run/mon.pid"
    wait_for 100 0.2 ceph "${C[@]}" mon stat || { log "ceph-mon did not come up"; return 1; }
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(ceph "${C[@]}" osd new "$osd_uuid") || { log "ceph osd new failed"; return 1; }
    ceph-osd "${C[@]}" -i "$id" --mkfs --osd-uuid "$osd_uuid" > "$D/log/osd-mkfs.out" 2>&1 \
        || { log "ceph-osd --mkfs failed"; tail -5 "$D/log/osd-mkfs.out" >&2; return 1; }
    ceph "${C[@]}" osd crush add "osd.$id" 1.0 root=default host=localhost > "$D/log/crush.out" 2>&1 ||
        { log "ceph osd crush add failed"; tail -3 "$D/log/crush.out" >&2; return 1; }
    setsid nohup ceph-osd "${C[@]}" -i "$id" -f > "$D/log/osd.out" 2>&1 < /dev/null 9>&- &
    echo $! > "$D/run/osd.pid"
    osd_up() { ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up'; }
    wait_for 300 0.2 osd_up || { log "ceph-osd did not come up"; return 1; }
    setsid nohup radosgw "${C[@]}" -n client.rgw.a -f > "$D/log/rgw.out" 2>&1 < /dev/null 9>&- &
    echo $! > "$D/run/rgw.pid"
    wait_for 400 0.3 curl -s -o /dev/null --max-time 2 "$ENDPOINT/" \
        || { log "radosgw did not answer on $ENDPOINT"; return 1; }
    radosgw-admin "${C[@]}" user create --uid=spim --display-name=spim-tests \
        --access-key="$ACCESS1" --secret-key="$SECRET1" > /dev/null || return 1
    radosgw-admin "${C[@]}" user create --uid=spim2 --display-name=spim-tests-2 \
        --access-key="$ACCESS2" --secret-key="$SECRET2" > /dev/null || return 1
    echo "$OWNER" > "$D/owner"
    touch "$D/ready"
}

write_env() {
    local tmp=$ENV_FILE.$$
    cat > "$tmp" <<EOF
export SPIM_TEST_S3_ENDPOINT=$ENDPOINT
export SPIM_TEST_ACCESS_KEY=$ACCESS1
export SPIM_TEST_SECRET_KEY='$SECRET1'
export SPIM_TEST_ACCESS_KEY2=$ACCESS2
export SPIM_TEST_SECRET_KEY2='$SECRET2'
export SPIM_TEST_REGION=us-east-1
EOF
    mv "$tmp" "$ENV_FILE"
}

start() {
    local t0=$SECONDS
    mkdir -p "$D/users" 2>/dev/null
    if [ -f "$D/ready" ] && healthy; then
        touch "$D/users/$OWNER"
        log "reusing radosgw on $ENDPOINT"
        return 0
    fi
    log "creating radosgw ($STORE) under $D"
    kill_ours
    rm -f "$ENV_FILE"
    # A fresh Ceph cluster on a busy machine now and then refuses a step
    # (seen once: a command reaching the new monitor before it had its
    # fsid); each attempt starts from nothing, and a failed one keeps its
    # logs beside the tree.
    local attempt
    for attempt in 1 2 3; do
        create && break
        kill_ours
        if [ "$attempt" = 3 ]; then log "start failed; logs in $D/log"; return 1; fi
        rm -rf "$D.failed-$attempt" && mv "$D/log" "$D.failed-$attempt" 2>/dev/null
        log "attempt $attempt failed (logs in $D.failed-$attempt); trying again"
    done
    write_env
    mkdir -p "$D/users" && touch "$D/users/$OWNER"
    log "radosgw ready on $ENDPOINT in $((SECONDS - t0)) s"
}

# Registered users other than the caller whose process still lives.
other_live_users() {
    local f u
    for f in "$D"/users/*; do
        [ -e "$f" ] || continue
        u=$(basename "$f")
        [ "$u" = "$OWNER" ] && continue
        if kill -0 "$u" 2>/dev/null; then echo "$u"; else rm -f "$f"; fi
    done
}

stop() {
    rm -f "$D/users/$OWNER"
    if [ "${SPIM_KEEP_SERVERS:-0}" = 1 ]; then log "SPIM_KEEP_SERVERS=1: leaving radosgw running"; return 0; fi
    if [ "${SPIM_STOP_SERVERS:-0}" != 1 ]; then
        if [ "$(cat "$D/owner" 2>/dev/null)" != "$OWNER" ]; then
            log "not started by this run: leaving radosgw running"; return 0
        fi
        if [ -n "$(other_live_users)" ]; then
            log "still used by other runs: leaving radosgw running"; return 0
        fi
    fi
    kill_ours
    rm -f "$D/ready" "$D/owner" "$ENV_FILE"
    log "radosgw stopped"
}

cmd=${1:-}
case "$cmd" in
    start|stop)
        exec 9> "$LOCK"
        flock -w "$([ "$cmd" = start ] && echo 600 || echo 120)" 9 || { log "could not take $LOCK"; exit 1; }
        "$cmd" ;;
    status)
        if healthy; then echo "radosgw healthy on $ENDPOINT"; else echo "radosgw not running"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
