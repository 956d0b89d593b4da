#!/usr/bin/env bash
# Local service harness for LLM-Sentinel: Kafka 4 (KRaft), RabbitMQ, VictoriaMetrics.
#
#   scripts/services.sh up     [kafka] [rabbitmq] [vm]   start (idempotent) and wait until ready
#   scripts/services.sh down   [kafka] [rabbitmq] [vm]   stop what this script started
#   scripts/services.sh status [kafka] [rabbitmq] [vm]   print "<name>: up|down ..." per service
#   scripts/services.sh restart [...]                    down then up
#   scripts/services.sh rabbitmqctl ARGS...              rabbitmqctl against our node (own
#                                                        cookie/HOME), e.g. `rabbitmqctl list_queues`
#   scripts/services.sh apt-install PKG...               install missing Debian packages (root)
#
# With no names, all three. Everything binds 127.0.0.1 only; all state lives in
# .services/ (git-ignored): jars, data, logs and pid files (.services/run/).
#
#   kafka     PLAINTEXT://127.0.0.1:9092 (controller 127.0.0.1:9093), single node KRaft
#             (combined broker+controller). Jars come from Maven Central through
#             scripts/kafka/pom.xml into .services/kafka/libs (cached; refreshed when the pom
#             or KAFKA_VERSION changes). Log: .services/kafka/logs/server.log
#   rabbitmq  amqp://guest:guest@127.0.0.1:5672/ (Debian's rabbitmq-server; guest works
#             on loopback only). Node sentinel@localhost, data/logs in .services/rabbitmq.
#   vm        VictoriaMetrics http://127.0.0.1:8428 (Debian's victoria-metrics); InfluxDB
#             line protocol at /api/v2/write, Prometheus API at /api/v1/*.
#             Log: .services/vm.log, data: .services/vm
#
# Missing system packages (rabbitmq-server, victoria-metrics, and java/maven if absent)
# are installed with apt-get (needs root); `apt-get update` runs only when an install is
# needed. Exit status: 0 on success; non-zero with an "[services] ERROR: ..." line when a
# service cannot start. `status` exits 3 when a requested service is down.
#
# Environment overrides (all optional):
#   KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093 RABBITMQ_PORT=5672 VM_PORT=8428
#   KAFKA_VERSION=4.4.0  KAFKA_HEAP_OPTS="-Xms256m -Xmx768m"
#   SERVICES_DIR=<repo>/.services  SERVICES_TIMEOUT=120 (start)  SERVICES_STOP_TIMEOUT=30
#   SERVICES_PYTHON=<python with confluent_kafka>  (default <repo>/.venv/bin/python)
set -eEuo pipefail
trap 'printf "[services] ERROR: unexpected failure (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVC_DIR=${SERVICES_DIR:-$ROOT/.services}
RUN_DIR=$SVC_DIR/run
HOST=127.0.0.1

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
RABBITMQ_PORT=${RABBITMQ_PORT:-5672}
VM_PORT=${VM_PORT:-8428}
START_TIMEOUT=${SERVICES_TIMEOUT:-120}
STOP_TIMEOUT=${SERVICES_STOP_TIMEOUT:-30}

KAFKA_DIR=$SVC_DIR/kafka
RMQ_DIR=$SVC_DIR/rabbitmq
VM_DATA=$SVC_DIR/vm
VM_LOG=$SVC_DIR/vm.log
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_NODE=${RABBITMQ_NODENAME_OVERRIDE:-sentinel$([[ $RABBITMQ_PORT == 5672 ]] || echo "-$RABBITMQ_PORT")@localhost}

ALL_SERVICES=(kafka rabbitmq vm)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------- helpers

pick_python() {
  if [[ -n ${SERVICES_PYTHON:-} ]]; then echo "$SERVICES_PYTHON"
  elif [[ -x $ROOT/.venv/bin/python ]]; then echo "$ROOT/.venv/bin/python"
  elif command -v python3 >/dev/null; then command -v python3
  else echo ""; fi
}
PY=$(pick_python)

port_open() { # port -> 0 when something accepts TCP on 127.0.0.1:port
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# pid_of NAME MARKER -> prints the pid from run/NAME.pid when that process is alive and its
# command line contains MARKER (guards against stale pid files and recycled pids).
pid_of() {
  local f=$RUN_DIR/$1.pid pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

clear_stale_pid() { # NAME MARKER
  local f=$RUN_DIR/$1.pid
  if [[ -e $f ]] && ! pid_of "$1" "$2" >/dev/null; then
    log "$1: removing stale pid file $f"
    rm -f "$f"
  fi
}

# stop_pid NAME PID: SIGTERM, wait STOP_TIMEOUT seconds, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name: still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL to $pid"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "$name: pid $pid survived SIGKILL"
}

# Launch a daemon in its own session, detached from this shell, and record its pid.
launch() { # NAME LOGFILE CMD...
  local name=$1 logf=$2; shift 2
  setsid "$@" >>"$logf" 2>&1 </dev/null 9>&- & # 9>&-: the daemon must not hold our lock
  echo $! >"$RUN_DIR/$name.pid"
}

tail_log() { # FILE [N]
  local f=$1 n=${2:-40}
  if [[ -s $f ]]; then
    printf '[services] ---- last %s lines of %s ----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2
    printf '[services] ---- end of %s ----\n' "$f" >&2
  fi
}

# ----------------------------------------------------------------------------- packages

APT_UPDATED=
apt_install() { # PKG... (only those not installed)
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "need these Debian packages, run as root or install them: ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
  # Never let a package's postinst start a system-wide daemon (it would bind 0.0.0.0 and
  # take our ports): a policy-rc.d that says "no" for the duration of the install.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  if [[ -z $APT_UPDATED ]]; then
    log "apt: apt-get update (to install ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >"$SVC_DIR/apt.log" 2>&1 || rc=$?
    APT_UPDATED=1
  fi
  if ((rc == 0)); then
    log "apt: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      >>"$SVC_DIR/apt.log" 2>&1 || rc=$?
  fi
  [[ -n $made_policy ]] && rm -f "$policy"
  if ((rc != 0)); then
    tail_log "$SVC_DIR/apt.log" 20
    die "apt-get could not install: ${missing[*]} (full log: $SVC_DIR/apt.log)"
  fi
}

need_packages() { # collect every package the requested services need, install in one go
  local pkgs=() s
  for s in "$@"; do
    case $s in
      kafka)
        command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
        [[ -f $KAFKA_DIR/libs/.complete ]] || command -v mvn >/dev/null || pkgs+=(maven)
        ;;
      rabbitmq) [[ -x $RMQ_BIN/rabbitmq-server ]] || pkgs+=(rabbitmq-server) ;;
      vm) command -v victoria-metrics >/dev/null || pkgs+=(victoria-metrics) ;;
    esac
  done
  ((${#pkgs[@]})) && apt_install "${pkgs[@]}"
  return 0
}

# ----------------------------------------------------------------------------- kafka

KAFKA_MARKER=kafka.Kafka

kafka_ready() { # metadata round trip through the real client, not just an open port
  port_open "$KAFKA_PORT" || return 1
  if [[ -n $PY ]] && "$PY" -c 'import confluent_kafka' 2>/dev/null; then
    "$PY" - "$HOST:$KAFKA_PORT" <<'EOF' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=5)
sys.exit(0 if md.brokers else 1)
EOF
  else
    # no client library: ApiVersions v0 request (correlation id 1) over /dev/tcp; a Kafka
    # broker answers with <int32 size><int32 correlation id = 1><int16 error = 0>...
    local resp
    resp=$(exec 3<>"/dev/tcp/$HOST/$KAFKA_PORT" &&
      printf '\x00\x00\x00\x12\x00\x12\x00\x00\x00\x00\x00\x01\x00\x08services' >&3 &&
      timeout 5 head -c 10 <&3 | od -An -tx1) 2>/dev/null || return 1
    resp=${resp//[[:space:]]/}
    [[ ${resp:8:12} == 000000010000 ]]
  fi
}

kafka_libs() {
  local libs=$KAFKA_DIR/libs pom=$ROOT/scripts/kafka/pom.xml stamp
  stamp="$KAFKA_VERSION $(sha256sum "$pom" | cut -c1-16)"
  if [[ -f $libs/.complete && $(<"$libs/.complete") == "$stamp" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "kafka: mvn not found (needed once to fetch the jars)"
  log "kafka: downloading jars for kafka_2.13 $KAFKA_VERSION (mvn dependency:copy-dependencies)…"
  rm -rf "$libs.tmp"
  mkdir -p "$KAFKA_DIR/logs"
  if ! mvn -q -B -f "$pom" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp" \
      >"$KAFKA_DIR/logs/mvn.log" 2>&1; then
    tail_log "$KAFKA_DIR/logs/mvn.log" 30
    die "kafka: mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log: $KAFKA_DIR/logs/mvn.log)"
  fi
  ls "$libs.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka: no kafka_2.13 jar after mvn"
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
  echo "$stamp" >"$libs/.complete"
  log "kafka: $(find "$libs" -name '*.jar' | wc -l) jars cached in $libs"
}

kafka_config() {
  local conf=$KAFKA_DIR/server.properties
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  {
    cat "$ROOT/scripts/kafka/server.properties"
    echo
    echo "# ---- generated by scripts/services.sh ----"
    echo "listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
    echo "advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
    echo "controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT"
    echo "log.dirs=$KAFKA_DIR/data"
  } >"$conf"
  cat >"$KAFKA_DIR/log4j2.properties" <<EOF
# generated by scripts/services.sh
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $KAFKA_DIR/logs/server.log
appender.file.filePattern = $KAFKA_DIR/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

kafka_java() { # sets KJAVA: the JVM command line shared by the storage tool and the server
  local heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  KJAVA=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties"
    "-Dkafka.logs.dir=$KAFKA_DIR/logs" -cp "$KAFKA_DIR/libs/*")
}

kafka_start() {
  clear_stale_pid kafka "$KAFKA_MARKER"
  if pid=$(pid_of kafka "$KAFKA_MARKER"); then
    log "kafka: already running (pid $pid)"; return 0
  fi
  if port_open "$KAFKA_PORT"; then
    if kafka_ready; then
      log "kafka: a Kafka not started by this script already answers on $HOST:$KAFKA_PORT; using it"
      return 0
    fi
    die "kafka: port $HOST:$KAFKA_PORT is taken by something that is not Kafka"
  fi
  port_open "$KAFKA_CONTROLLER_PORT" && die "kafka: controller port $HOST:$KAFKA_CONTROLLER_PORT is already taken"
  kafka_libs
  kafka_config
  kafka_java
  if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
    local cid
    cid=$("${KJAVA[@]}" kafka.tools.StorageTool random-uuid 2>"$KAFKA_DIR/logs/format.log" | tail -n1) || true
    if [[ ! $cid =~ ^[A-Za-z0-9_-]{22}$ ]]; then
      echo "$cid" >>"$KAFKA_DIR/logs/format.log"
      tail_log "$KAFKA_DIR/logs/format.log" 20
      die "kafka: the storage tool (kafka.tools.StorageTool random-uuid) could not run"
    fi
    log "kafka: formatting storage (cluster id $cid)"
    "${KJAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cid" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 || {
      tail_log "$KAFKA_DIR/logs/format.log"; die "kafka: storage format failed"; }
  fi
  log "kafka: starting $KAFKA_VERSION on $HOST:$KAFKA_PORT"
  : >"$KAFKA_DIR/logs/stdout.log"
  launch kafka "$KAFKA_DIR/logs/stdout.log" "${KJAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
}

kafka_fail() {
  tail_log "$KAFKA_DIR/logs/stdout.log" 20
  tail_log "$KAFKA_DIR/logs/server.log" 40
  die "$1"
}

# ----------------------------------------------------------------------------- rabbitmq

# our node's beam.smp is the one started with "-home <.services/rabbitmq/home>"
RMQ_MARKER="-home $RMQ_DIR/home"

rmq_env() { # everything the rabbitmq scripts need to find *our* node
  export HOME=$RMQ_DIR/home # Erlang cookie lives in $HOME/.erlang.cookie
  export RABBITMQ_NODENAME=$RMQ_NODE
  export RABBITMQ_NODE_IP_ADDRESS=$HOST
  export RABBITMQ_NODE_PORT=$RABBITMQ_PORT
  export RABBITMQ_DIST_PORT=$((RABBITMQ_PORT + 20000))
  export RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia
  export RABBITMQ_LOG_BASE=$RMQ_DIR/log
  export RABBITMQ_PID_FILE=$RUN_DIR/rabbitmq.pid
  export RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
  export RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf
  # Erlang distribution + epmd on loopback only.
  export ERL_EPMD_ADDRESS=$HOST
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rmq_ctl() { (rmq_env; "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@"); }

amqp_answers() { # AMQP 0-9-1 protocol header -> a broker answers with a Connection.Start frame
  local first
  first=$(exec 3<>"/dev/tcp/$HOST/$RABBITMQ_PORT" && printf 'AMQP\x00\x00\x09\x01' >&3 &&
    timeout 5 head -c 1 <&3 | od -An -tx1) 2>/dev/null || return 1
  [[ ${first// /} == 01 ]]
}

rabbitmq_ready() {
  port_open "$RABBITMQ_PORT" && amqp_answers || return 1
  # our own node: also the official check that the app finished booting
  if rabbitmq_booting; then rmq_ctl -q await_startup --timeout 5 >/dev/null 2>&1; fi
}

rabbitmq_start() {
  clear_stale_pid rabbitmq "$RMQ_MARKER"
  if pid=$(pid_of rabbitmq "$RMQ_MARKER"); then
    log "rabbitmq: already running (pid $pid)"; return 0
  fi
  if rabbitmq_booting; then # an earlier `up` launched it; it has not written its pid file yet
    log "rabbitmq: our node is already starting"; return 0
  fi
  if port_open "$RABBITMQ_PORT"; then
    amqp_answers || die "rabbitmq: port $HOST:$RABBITMQ_PORT is taken by something that does not speak AMQP"
    log "rabbitmq: an AMQP broker not started by this script already answers on $HOST:$RABBITMQ_PORT; using it"
    touch "$RUN_DIR/rabbitmq.external"
    return 0
  fi
  rm -f "$RUN_DIR/rabbitmq.external"
  mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  local cookie=$RMQ_DIR/home/.erlang.cookie
  if [[ ! -s $cookie ]]; then # one cookie shared by the server and rabbitmqctl
    (umask 077; head -c 15 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' | tr 'a-f' 'A-F' >"$cookie")
    chmod 400 "$cookie"
  fi
  cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# generated by scripts/services.sh
listeners.tcp.1 = $HOST:$RABBITMQ_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
EOF
  echo '[].' >"$RMQ_DIR/enabled_plugins"
  : >"$RMQ_DIR/rabbitmq-env.conf"
  # epmd is started by the first Erlang node; remember whether it was us, for `down`.
  if ! (ERL_EPMD_ADDRESS=$HOST epmd -names >/dev/null 2>&1); then touch "$RUN_DIR/epmd.ours"; fi
  log "rabbitmq: starting node $RMQ_NODE on $HOST:$RABBITMQ_PORT"
  rm -f "$RUN_DIR/rabbitmq.pid"
  # Run the real script, not Debian's /usr/sbin wrapper: as root that one switches to the
  # rabbitmq user (which cannot write .services/ and reads another cookie).
  (rmq_env; cd "$RMQ_DIR" && "$RMQ_BIN/rabbitmq-server" -detached) \
    >"$RMQ_DIR/log/startup.log" 2>&1 </dev/null 9>&- || {
    tail_log "$RMQ_DIR/log/startup.log"; die "rabbitmq: rabbitmq-server -detached failed"; }
}

rabbitmq_fail() {
  tail_log "$RMQ_DIR/log/startup.log" 20
  local f
  for f in "$RMQ_DIR"/log/*.log; do [[ $f == */startup.log ]] || tail_log "$f" 40; done
  die "$1"
}

# ----------------------------------------------------------------------------- victoria-metrics

VM_MARKER=victoria-metrics

http_get() { # URL -> body on stdout, non-zero on failure (python: curl may be absent)
  local py=${PY:-python3}
  "$py" - "$1" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
EOF
}

vm_ready() {
  port_open "$VM_PORT" || return 1
  [[ $(http_get "http://$HOST:$VM_PORT/health" 2>/dev/null) == OK ]]
}

vm_start() {
  clear_stale_pid vm "$VM_MARKER"
  if pid=$(pid_of vm "$VM_MARKER"); then
    log "vm: already running (pid $pid)"; return 0
  fi
  if port_open "$VM_PORT"; then
    if vm_ready; then
      log "vm: something not started by this script already answers /health on $HOST:$VM_PORT; using it"
      return 0
    fi
    die "vm: port $HOST:$VM_PORT is taken by something that is not VictoriaMetrics"
  fi
  mkdir -p "$VM_DATA"
  log "vm: starting victoria-metrics on $HOST:$VM_PORT"
  # -search.latencyOffset=1s: points become visible to /api/v1/query* one second after
  # they are written (default 30s), which is what tests and local dashboards want.
  # -dedup.minScrapeInterval=1ms: a point written again with the same timestamp replaces
  # the first, as InfluxDB does — replays after recovery must not duplicate points.
  launch vm "$VM_LOG" victoria-metrics \
    -httpListenAddr="$HOST:$VM_PORT" \
    -storageDataPath="$VM_DATA" \
    -retentionPeriod=100y \
    -search.latencyOffset=1s \
    -dedup.minScrapeInterval=1ms \
    -loggerOutput=stderr
}

# Write one point with the InfluxDB v2 API and read it back through /api/v1/export.
vm_selfcheck() {
  local py=${PY:-python3}
  "$py" - "http://$HOST:$VM_PORT" <<'EOF'
import json, sys, time, urllib.request, urllib.parse
base = sys.argv[1]
m = "services_selfcheck_%d" % time.time_ns()
req = urllib.request.Request(base + "/api/v2/write?org=o&bucket=b&precision=ns",
                             data=("%s value=1 %d" % (m, time.time_ns())).encode(), method="POST")
urllib.request.urlopen(req, timeout=5).read()
match = urllib.parse.quote('{__name__="%s_value"}' % m)
for _ in range(50):
    urllib.request.urlopen(base + "/internal/force_flush", timeout=5).read()
    body = urllib.request.urlopen(base + "/api/v1/export?match[]=" + match, timeout=5).read()
    if body.strip():
        json.loads(body.splitlines()[0])
        urllib.request.urlopen(base + "/api/v1/admin/tsdb/delete_series?match[]=" + match,
                               timeout=5).read()
        sys.exit(0)
    time.sleep(0.1)
sys.exit("point written to /api/v2/write never showed up in /api/v1/export")
EOF
}

# ----------------------------------------------------------------------------- up / down / status

marker_of() { case $1 in kafka) echo "$KAFKA_MARKER" ;; rabbitmq) echo "$RMQ_MARKER" ;; vm) echo "$VM_MARKER" ;; esac; }
ready() { case $1 in kafka) kafka_ready ;; rabbitmq) rabbitmq_ready ;; vm) vm_ready ;; esac; }
addr_of() {
  case $1 in
    kafka) echo "$HOST:$KAFKA_PORT" ;;
    rabbitmq) echo "amqp://guest:guest@$HOST:$RABBITMQ_PORT/" ;;
    vm) echo "http://$HOST:$VM_PORT" ;;
  esac
}

wait_ready() { # NAME: poll until ready, our process dies, or START_TIMEOUT
  local name=$1 marker deadline pid t0=$SECONDS
  marker=$(marker_of "$name")
  deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ready "$name"; then return 0; fi
    if [[ $name == rabbitmq ]]; then
      # -detached returns at once; the node writes its pid file itself while booting
      if [[ ! -e $RUN_DIR/rabbitmq.external ]] && ((SECONDS - t0 > 5)) && ! rabbitmq_booting; then
        rabbitmq_fail "rabbitmq: the node is not running (it exited during startup)"
      fi
    elif [[ -e $RUN_DIR/$name.pid ]] && ! pid_of "$name" "$marker" >/dev/null; then
      rm -f "$RUN_DIR/$name.pid"
      "${name}_fail" "$name: the process exited during startup"
    fi
    sleep 0.5
  done
  pid=$(pid_of "$name" "$marker" || true)
  "${name}_fail" "$name: not ready on $(addr_of "$name") after ${START_TIMEOUT}s${pid:+ (pid $pid still running; stop it with: $0 down $name)}"
}

rabbitmq_booting() { pgrep -f -- "$RMQ_MARKER" >/dev/null 2>&1; }

vm_fail() { tail_log "$VM_LOG" 30; die "$1"; }

cmd_up() {
  local s t0=$SECONDS vpid
  need_packages "$@"
  for s in "$@"; do "${s}_start"; done
  for s in "$@"; do
    wait_ready "$s"
    # once per process we started: the InfluxDB v2 write -> /api/v1/export round trip
    if [[ $s == vm ]] && vpid=$(pid_of vm "$VM_MARKER") &&
      [[ $(cat "$RUN_DIR/vm.checked" 2>/dev/null) != "$vpid" ]]; then
      vm_selfcheck || vm_fail "vm: InfluxDB v2 write -> /api/v1/export round trip failed"
      echo "$vpid" >"$RUN_DIR/vm.checked"
    fi
    log "$s: ready at $(addr_of "$s") (+$((SECONDS - t0))s)"
  done
  log "up: $* ready in $((SECONDS - t0))s"
}

stop_one() {
  local name=$1 marker pid
  marker=$(marker_of "$name")
  rm -f "$RUN_DIR/$name.checked"
  if ! pid=$(pid_of "$name" "$marker"); then
    if [[ -e $RUN_DIR/$name.pid ]]; then log "$name: removing stale pid file"; rm -f "$RUN_DIR/$name.pid"; fi
    [[ $name == rabbitmq ]] && rm -f "$RUN_DIR/rabbitmq.external"
    log "$name: not running (nothing to stop)"
    return 0
  fi
  log "$name: stopping pid $pid"
  if [[ $name == rabbitmq ]]; then
    timeout "$STOP_TIMEOUT" bash "$ROOT/scripts/services.sh" rabbitmqctl stop >/dev/null 2>&1 || true
  fi
  stop_pid "$name" "$pid"
  rm -f "$RUN_DIR/$name.pid"
  if [[ $name == rabbitmq && -e $RUN_DIR/epmd.ours ]]; then
    # epmd was started by our node; end it if no other Erlang node uses it.
    if ! (ERL_EPMD_ADDRESS=$HOST epmd -names 2>/dev/null | grep -q '^name '); then
      ERL_EPMD_ADDRESS=$HOST epmd -kill >/dev/null 2>&1 || true
    fi
    rm -f "$RUN_DIR/epmd.ours"
  fi
  log "$name: stopped"
}

cmd_down() {
  local i
  for ((i = $# ; i >= 1; i--)); do stop_one "${!i}"; done
}

cmd_status() {
  local s pid rc=0 marker
  for s in "$@"; do
    marker=$(marker_of "$s")
    if pid=$(pid_of "$s" "$marker"); then
      if ready "$s"; then echo "$s: up (pid $pid, $(addr_of "$s"))"
      else echo "$s: starting or unhealthy (pid $pid, $(addr_of "$s") not answering)"; rc=3; fi
    elif ready "$s"; then
      echo "$s: up (not started by services.sh, $(addr_of "$s"))"
    else
      echo "$s: down"; rc=3
    fi
  done
  return $rc
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  if [[ $cmd == rabbitmqctl ]]; then rmq_ctl "$@"; return; fi
  if [[ $cmd == apt-install ]]; then mkdir -p "$SVC_DIR"; apt_install "$@"; return; fi
  local services=() s
  (($#)) || set -- "${ALL_SERVICES[@]}"
  for s in "$@"; do
    case $s in
      kafka | rabbitmq | vm) services+=("$s") ;;
      victoria-metrics | victoriametrics | victoria) services+=(vm) ;;
      rabbit) services+=(rabbitmq) ;;
      *) die "unknown service '$s' (expected: ${ALL_SERVICES[*]})" ;;
    esac
  done
  mkdir -p "$RUN_DIR"
  case $cmd in
    up | start)
      exec 9>"$RUN_DIR/.lock"; flock -w 300 9 || die "another services.sh holds $RUN_DIR/.lock"
      cmd_up "${services[@]}" ;;
    down | stop)
      exec 9>"$RUN_DIR/.lock"; flock -w 300 9 || die "another services.sh holds $RUN_DIR/.lock"
      cmd_down "${services[@]}" ;;
    restart)
      exec 9>"$RUN_DIR/.lock"; flock -w 300 9 || die "another services.sh holds $RUN_DIR/.lock"
      cmd_down "${services[@]}"; cmd_up "${services[@]}" ;;
    status) local rc=0; cmd_status "${services[@]}" || rc=$?; exit "$rc" ;;
    *) sed -n '2,12p' "$ROOT/scripts/services.sh" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
