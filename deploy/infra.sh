#!/usr/bin/env bash
# deploy/infra.sh — the project's Kafka and PostgreSQL on this machine, without Docker.
#
#   bash deploy/infra.sh up           start both (idempotent) and wait until they answer
#   bash deploy/infra.sh down         stop both; the data is kept
#   bash deploy/infra.sh status       what runs where; exit 0 when both are up, 3 otherwise
#   bash deploy/infra.sh logs [-f]    last 100 lines of both logs (-f: follow)
#   bash deploy/infra.sh reset        down, then delete the data (the downloaded jars stay)
#   bash deploy/infra.sh env          `export ...` lines for the application: eval "$(bash deploy/infra.sh env)"
#   bash deploy/infra.sh kafka-stop   stop Kafka alone (Postgres keeps running)
#   bash deploy/infra.sh kafka-start  start Kafka alone and wait until it answers
#   bash deploy/infra.sh pg-stop      stop the local PostgreSQL alone (pg_ctl stop -m fast: clients
#                                     are disconnected, as in a restart); Kafka keeps running
#   bash deploy/infra.sh pg-start     start the local PostgreSQL alone and wait until it answers
#                                     (both refuse when SWITCHBOARD_DATABASE_URL names your own server)
#   bash deploy/infra.sh browser      make sure Debian's chromium is installed (the browser tests
#                                     drive it; installed with apt-get when run as root)
#   bash deploy/infra.sh asyncapi-tools
#                                     make sure the official AsyncAPI parser (tools/asyncapi, pinned
#                                     by its package-lock.json) is installed with `npm ci`; Debian's
#                                     nodejs and npm are installed with apt-get when run as root
#   bash deploy/infra.sh kafka-tool CLASS [ARGS...]
#                                     run a Kafka command line tool from the jars, e.g.
#                                     kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:19092 --list
#
# Everything lives in <project>/.local/ (git-ignored):
#   kafka/libs/            broker and tool jars, fetched once from Maven Central by deploy/kafka/pom.xml
#   kafka/data/            the KRaft log directory (metadata and topics)
#   kafka/server.properties, kafka/cluster.id, kafka/broker.pid, kafka/broker.log (+ broker.log.1)
#   postgres/data/         a PostgreSQL cluster from Debian's postgresql package (pid: data/postmaster.pid)
#   postgres/postgres.log, postgres/run/ (unix socket)
#
# Environment:
#   SWITCHBOARD_KAFKA_PORT             broker listener on 127.0.0.1 (default 19092)
#   SWITCHBOARD_KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 19093)
#   SWITCHBOARD_PG_PORT                local PostgreSQL port on 127.0.0.1 (default 25432)
#   SWITCHBOARD_DATABASE_URL           a PostgreSQL server of your own: when set (to anything but the
#                                      local cluster's URL), no Postgres is managed here; `up` only
#                                      checks that it answers `select 1`
#   SWITCHBOARD_INFRA_TIMEOUT          seconds `up` waits for both to answer (default 90)
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(dirname "$DEPLOY_DIR")"
LOCAL="$ROOT/.local"

# The default ports sit below Linux's ephemeral range (32768-60999): a client retrying a
# connection to a stopped server on a port inside that range can be handed that very port as
# its own source port and connect to itself, and the server then cannot bind it again.
KAFKA_PORT="${SWITCHBOARD_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${SWITCHBOARD_KAFKA_CONTROLLER_PORT:-19093}"
PG_PORT="${SWITCHBOARD_PG_PORT:-25432}"
TIMEOUT="${SWITCHBOARD_INFRA_TIMEOUT:-90}"
STOP_TIMEOUT=30 # seconds a process gets after SIGTERM before SIGKILL

KAFKA_POM="$DEPLOY_DIR/kafka/pom.xml"
# The one pinned version, read from the pom so that it is written down only once.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
KAFKA_DIR="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
KAFKA_TOOLS_CONFIG="$KAFKA_DIR/tools.properties"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
KAFKA_PID_FILE="$KAFKA_DIR/broker.pid"
KAFKA_LOG="$KAFKA_DIR/broker.log"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

PG_DIR="$LOCAL/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_LOCAL_URL="postgresql://switchboard:switchboard@127.0.0.1:$PG_PORT/switchboard"

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

say() { printf 'infra: %s\n' "$*" >&2; }
die() {
	printf 'infra: error: %s\n' "$*" >&2
	exit 1
}
is_root() { [[ "$(id -u)" == 0 ]]; }
now() { date +%s; }

# die, showing the end of a log file: most failures are explained there.
die_with_log() {
	local log="$1"
	shift
	printf 'infra: error: %s\n' "$*" >&2
	if [[ -f "$log" ]]; then
		printf 'infra: last 30 lines of %s:\n' "$log" >&2
		tail -n 30 "$log" | sed 's/^/    /' >&2
	else
		printf 'infra: (no log file at %s)\n' "$log" >&2
	fi
	exit 1
}

# True when something accepts TCP connections on 127.0.0.1:PORT (bash's /dev/tcp, no extra tool).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Serialise the commands that change state: two `up` at once (parallel test workers) would
# otherwise both start a broker. fd 9 must not leak into the servers (see `9>&-` below), or
# a running broker would hold the lock for ever.
take_lock() {
	mkdir -p "$LOCAL"
	exec 9>"$LOCAL/infra.lock"
	flock -w 600 9 || die "another infra.sh has held $LOCAL/infra.lock for 10 minutes"
}

apt_install() {
	say "installing Debian package(s): $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq "$@" >&2
}

# Make sure COMMAND exists: install PACKAGE when we are root, else say how to get it.
need_command() {
	local cmd="$1" package="$2"
	command -v "$cmd" >/dev/null 2>&1 && return 0
	if is_root; then
		apt_install "$package"
		command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is still missing after installing $package"
	else
		die "'$cmd' is not installed; install it with: sudo apt-get install -y $package"
	fi
}

# ---------------------------------------------------------------------------------------------
# Kafka: jars
# ---------------------------------------------------------------------------------------------

need_java() {
	need_command java openjdk-17-jre-headless
	local major
	major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
	[[ -n "$major" && "$major" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17 or newer (found: ${major:-unknown})"
}

pom_checksum() { sha256sum "$KAFKA_POM" | cut -d ' ' -f 1; }

# The jars are current when the broker jar of the pinned version is there and they were
# fetched with this very pom (its checksum is kept beside them).
kafka_jars_current() {
	[[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]] &&
		[[ -f "$KAFKA_LIBS/.pom.sha256" ]] &&
		[[ "$(cat "$KAFKA_LIBS/.pom.sha256")" == "$(pom_checksum)" ]]
}

fetch_kafka_jars() {
	kafka_jars_current && return 0
	need_java
	need_command mvn maven
	say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS (once; Maven caches them in ~/.m2) ..."
	# Into a temporary folder first: an interrupted download never looks complete.
	local tmp="$KAFKA_DIR/libs.partial"
	rm -rf "$tmp"
	mkdir -p "$KAFKA_DIR"
	local -a repo=()
	# Maven keeps its cache in ~/.m2 of the account's home (from /etc/passwd, not $HOME). A
	# service account without a writable home (nobody: /nonexistent) gets a cache in .local/.
	local home
	home="$(getent passwd "$(id -u)" | cut -d : -f 6)"
	if [[ ! -w "${home:-/nonexistent}/.m2" && ! -w "${home:-/nonexistent}" ]]; then
		repo=(-Dmaven.repo.local="$LOCAL/m2repo")
		say "no writable home directory for $(id -un): Maven caches in $LOCAL/m2repo"
	fi
	mvn -q -B -Dstyle.color=never "${repo[@]}" -f "$KAFKA_POM" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1 |
		sed 's/\x1b\[[0-9;]*m//g' >&2 || # Maven 3.8 prints colour codes even when told not to
		die "Maven could not fetch the Kafka jars (see its output above)"
	[[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "Maven ran but kafka_2.13-$KAFKA_VERSION.jar is not in $tmp"
	pom_checksum >"$tmp/.pom.sha256"
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
	say "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f 1))"
}

# Run a short-lived Kafka tool (a client JVM): small heap, quick start, quiet logging.
KAFKA_TOOL_JAVA=(java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
	-Dlog4j2.configurationFile="$DEPLOY_DIR/kafka/tools-log4j2.xml" -cp "$KAFKA_LIBS/*")
kafka_tool() { "${KAFKA_TOOL_JAVA[@]}" "$@"; }

# ---------------------------------------------------------------------------------------------
# Kafka: configuration and storage
# ---------------------------------------------------------------------------------------------

# Written on every start, so a change of port through the environment takes effect.
write_kafka_config() {
	mkdir -p "$KAFKA_DATA"
	cat >"$KAFKA_CONFIG" <<EOF
# Generated by deploy/infra.sh on every start: edit the script, not this file.
# One node that is both the KRaft controller and the broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA

# Topics are part of the design (events/ declares them); a typo must fail, not make a topic.
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=1

# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Consumers of a group start at once instead of waiting 3 s for more members (tests).
group.initial.rebalance.delay.ms=0

# Every event topic keeps its history: no time-based deletion (-1 = for ever).
log.retention.hours=-1
EOF
	# For the readiness check and kafka-tool: fail fast instead of the client's 60 s default.
	cat >"$KAFKA_TOOLS_CONFIG" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# KRaft storage is formatted once, with a cluster id kept in a file. Never again once
# meta.properties exists: formatting would throw the topics away.
format_kafka_storage() {
	[[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
	if [[ ! -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
		kafka_tool kafka.tools.StorageTool random-uuid >"$KAFKA_CLUSTER_ID_FILE"
	fi
	say "formatting Kafka storage in $KAFKA_DATA (cluster id $(cat "$KAFKA_CLUSTER_ID_FILE"))"
	kafka_tool kafka.tools.StorageTool format --config "$KAFKA_CONFIG" \
		--cluster-id "$(cat "$KAFKA_CLUSTER_ID_FILE")" >&2 ||
		die "formatting the Kafka storage in $KAFKA_DATA failed"
}

# ---------------------------------------------------------------------------------------------
# Kafka: process
# ---------------------------------------------------------------------------------------------

# Prints the broker's pid when it runs. The pid file alone could name a recycled pid, so the
# process's command line must be our broker with our configuration.
kafka_pid() {
	local pid
	[[ -f "$KAFKA_PID_FILE" ]] || return 1
	pid="$(cat "$KAFKA_PID_FILE")"
	[[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $KAFKA_CONFIG" || return 1
	echo "$pid"
}

# Launch the broker in the background; does not wait (see wait_for_kafka).
launch_kafka() {
	local pid
	if pid="$(kafka_pid)"; then
		say "Kafka is already running (pid $pid)"
		return 0
	fi
	fetch_kafka_jars
	need_java
	local port
	for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
		port_open "$port" && die "port $port on 127.0.0.1 is taken by another process; stop it or choose other ports with SWITCHBOARD_KAFKA_PORT / SWITCHBOARD_KAFKA_CONTROLLER_PORT"
	done
	write_kafka_config
	format_kafka_storage
	# Keep the previous run's log beside the new one; the new one then tells this run alone.
	[[ -f "$KAFKA_LOG" ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
	say "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT), log $KAFKA_LOG"
	# setsid: its own session, so a Ctrl-C in the terminal (or a test runner's process group
	# being signalled) does not take the broker down with it. Same JVM flags as
	# kafka-server-start.sh, with a bounded heap: 1.5 GB holds the metadata of the ~10,000
	# partitions a long development session's tests can leave behind (512 MB did not).
	setsid nohup java -Xms256m -Xmx1536m \
		-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
		-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$DEPLOY_DIR/kafka/log4j2.xml" \
		-Dkafka.logs.dir="$KAFKA_DIR" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG" \
		>>"$KAFKA_LOG" 2>&1 </dev/null 9>&- &
	echo $! >"$KAFKA_PID_FILE"
}

# Kafka is ready when it answers a real admin request (DescribeCluster) with our cluster id:
# an open port alone says nothing about the broker having joined its own quorum.
kafka_answers() {
	local answer
	port_open "$KAFKA_PORT" || return 1
	# timeout: a safety net only, the client itself gives up after default.api.timeout.ms.
	answer="$(timeout 30 "${KAFKA_TOOL_JAVA[@]}" org.apache.kafka.tools.ClusterTool cluster-id \
		--bootstrap-server "$KAFKA_BOOTSTRAP" --config "$KAFKA_TOOLS_CONFIG" 2>/dev/null)" || return 1
	if [[ -s "$KAFKA_CLUSTER_ID_FILE" && "$answer" != *"$(cat "$KAFKA_CLUSTER_ID_FILE")"* ]]; then
		die "a Kafka with another cluster id answers on $KAFKA_BOOTSTRAP ($answer): not ours"
	fi
}

wait_for_kafka() {
	local deadline="$1"
	while ! kafka_answers; do
		kafka_pid >/dev/null || die_with_log "$KAFKA_LOG" "Kafka stopped while starting"
		(($(now) < deadline)) || die_with_log "$KAFKA_LOG" "Kafka did not answer on $KAFKA_BOOTSTRAP within ${TIMEOUT}s (SWITCHBOARD_INFRA_TIMEOUT)"
		sleep 1
	done
	say "Kafka is up on $KAFKA_BOOTSTRAP (pid $(kafka_pid))"
}

# SIGTERM lets the broker shut down cleanly (it flushes and closes its logs); SIGKILL only
# when it has not finished after STOP_TIMEOUT seconds.
stop_kafka() {
	local pid deadline
	if ! pid="$(kafka_pid)"; then
		say "Kafka is not running"
		rm -f "$KAFKA_PID_FILE"
		return 0
	fi
	say "stopping Kafka (pid $pid) ..."
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$(($(now) + STOP_TIMEOUT))
	while kafka_pid >/dev/null && (($(now) < deadline)); do sleep 0.5; done
	if kafka_pid >/dev/null; then
		say "Kafka did not stop within ${STOP_TIMEOUT}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while kafka_pid >/dev/null; do sleep 0.2; done
	fi
	rm -f "$KAFKA_PID_FILE"
	say "Kafka stopped"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

# A database URL given by the user means "use that server". The local cluster's own URL
# (as printed by `env`, so possibly exported in this shell) still means the local cluster.
pg_external() { [[ -n "${SWITCHBOARD_DATABASE_URL:-}" && "$SWITCHBOARD_DATABASE_URL" != "$PG_LOCAL_URL" ]]; }
database_url() { if pg_external; then echo "$SWITCHBOARD_DATABASE_URL"; else echo "$PG_LOCAL_URL"; fi; }

# The unix socket lives in the project too, unless the path would be longer than the
# kernel's limit for socket paths (107 bytes); then in /tmp under a name unique to the project.
pg_socket_dir() {
	local dir="$PG_DIR/run"
	if ((${#dir} + 20 > 100)); then
		dir="/tmp/switchboard-pg-$(id -u)-$(printf '%s' "$ROOT" | sha256sum | cut -c 1-12)"
	fi
	echo "$dir"
}

# The server refuses to run as root, so as root it runs as Debian's `postgres` system user;
# anyone else runs it as themselves.
pg_user() { if is_root; then echo postgres; else id -un; fi; }

# Run a PostgreSQL program as that user, from a directory it can read (initdb fails when the
# current directory is not accessible, e.g. /root), with a locale that surely exists.
pg_run() {
	if is_root; then
		(cd "$PG_DIR" && runuser -u postgres -- env HOME="$PG_DIR" LC_ALL=C.UTF-8 LANG=C.UTF-8 "$@" 9>&-)
	else
		(cd "$PG_DIR" && env LC_ALL=C.UTF-8 LANG=C.UTF-8 "$@" 9>&-)
	fi
}

# The newest installed server, or the one the cluster was created with (a cluster can only be
# run by its own major version).
pg_bin() {
	if [[ -f "$PG_DATA/PG_VERSION" ]]; then
		local v
		v="$(cat "$PG_DATA/PG_VERSION")"
		[[ -x "/usr/lib/postgresql/$v/bin/postgres" ]] || return 1
		echo "/usr/lib/postgresql/$v/bin"
		return 0
	fi
	local bin
	bin="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n 1)"
	[[ -n "$bin" ]] || return 1
	dirname "$bin"
}

need_pg_binaries() {
	pg_bin >/dev/null && return 0
	if [[ -f "$PG_DATA/PG_VERSION" ]]; then
		die "the cluster in $PG_DATA was made by PostgreSQL $(cat "$PG_DATA/PG_VERSION"), which is not installed: install postgresql-$(cat "$PG_DATA/PG_VERSION") or run 'infra.sh reset'"
	fi
	if is_root; then
		apt_install postgresql
		pg_bin >/dev/null || die "PostgreSQL server binaries are still missing under /usr/lib/postgresql/*/bin"
	else
		die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; install them with: sudo apt-get install -y postgresql (or set SWITCHBOARD_DATABASE_URL to a server of your own)"
	fi
}

# As root the cluster belongs to `postgres`, which must be able to walk down to it. A project
# inside a 0700 directory (mktemp -d, a home directory) blocks it: give such ancestors the
# traverse bit for others, and nothing more (no read, no write).
pg_prepare_dirs() {
	mkdir -p "$PG_DIR"
	is_root || return 0
	chown postgres:postgres "$PG_DIR"
	local dir="" part
	local -a parts
	IFS=/ read -r -a parts <<<"${PG_DIR#/}"
	for part in "${parts[@]}"; do
		dir="$dir/$part"
		if ! runuser -u postgres -- test -x "$dir"; then
			chmod o+x "$dir"
			say "granted others the traverse bit (o+x) on $dir so that the postgres user can reach $PG_DATA"
		fi
	done
}

# Settings of ours, rewritten on every start (port and socket may change through the
# environment); postgresql.conf includes the file.
write_pg_config() {
	local socket_dir
	socket_dir="$(pg_socket_dir)"
	pg_run mkdir -p -m 0700 "$socket_dir"
	# shellcheck disable=SC2016 # $1 is expanded by the inner sh
	pg_run sh -c 'cat >"$1"' sh "$PG_DATA/switchboard.conf" <<EOF
# Generated by deploy/infra.sh on every start: edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$socket_dir'
# Each process keeps a small pool; a test session runs every process, some twice (the
# replica and fault tests), beside a fresh projector: 200 ran out with parallel runs.
max_connections = 600
shared_buffers = 128MB
# Durability stays real: the services rely on commits being on disk.
fsync = on
synchronous_commit = on
full_page_writes = on
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

init_pg_cluster() {
	[[ -f "$PG_DATA/PG_VERSION" ]] && return 0
	local bin
	bin="$(pg_bin)"
	say "creating a PostgreSQL $(basename "$(dirname "$bin")") cluster in $PG_DATA (owner: $(pg_user))"
	# Local (unix socket) connections are trusted: the socket directory is private to the
	# cluster's owner. TCP connections need a password (scram-sha-256).
	pg_run "$bin/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
		die_with_log "$PG_DIR/initdb.log" "initdb failed"
	pg_run sh -c "echo \"include_if_exists = 'switchboard.conf'\" >>\"\$1\"" sh "$PG_DATA/postgresql.conf"
}

pg_running() {
	local bin
	bin="$(pg_bin 2>/dev/null)" || return 1
	[[ -f "$PG_DATA/PG_VERSION" ]] || return 1
	pg_run "$bin/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

pg_pid() { pg_running && head -n 1 "$PG_DATA/postmaster.pid"; }

start_pg() {
	local deadline="$1"
	need_pg_binaries
	pg_prepare_dirs
	init_pg_cluster
	if pg_running; then
		say "PostgreSQL is already running (pid $(pg_pid))"
	else
		port_open "$PG_PORT" && die "port $PG_PORT on 127.0.0.1 is taken by another process; stop it or choose another with SWITCHBOARD_PG_PORT"
		write_pg_config
		say "starting PostgreSQL on 127.0.0.1:$PG_PORT, log $PG_LOG"
		local wait=$((deadline - $(now)))
		((wait > 0)) || wait=1
		pg_run "$(pg_bin)/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$wait" -s ||
			die_with_log "$PG_LOG" "PostgreSQL did not start"
	fi
	create_pg_role_and_database
}

# Role and database, idempotently (and the role's attributes made right if they drifted).
create_pg_role_and_database() {
	pg_run "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$(pg_socket_dir)" -p "$PG_PORT" -U postgres -d postgres <<'SQL' >/dev/null ||
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard') THEN
    CREATE ROLE switchboard;
  END IF;
END
$$;
ALTER ROLE switchboard WITH LOGIN CREATEDB PASSWORD 'switchboard';
SELECT 'CREATE DATABASE switchboard OWNER switchboard'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'switchboard')\gexec
SQL
		die_with_log "$PG_LOG" "could not create the switchboard role and database"
}

psql_cmd() {
	if command -v psql >/dev/null 2>&1; then echo psql; elif pg_bin >/dev/null; then echo "$(pg_bin)/psql"; else return 1; fi
}

# The same check the application makes: a TCP connection with the URL's credentials.
pg_answers() {
	local psql
	psql="$(psql_cmd)" || return 1
	[[ "$(PGCONNECT_TIMEOUT=3 "$psql" "$(database_url)" -X -A -t -q -c 'select 1' 2>/dev/null)" == 1 ]]
}

wait_for_pg() {
	local deadline="$1"
	pg_external && { psql_cmd >/dev/null || need_command psql postgresql-client; }
	while ! pg_answers; do
		if (($(now) >= deadline)); then
			# Show psql's own words (bad password, refused, unknown database...).
			PGCONNECT_TIMEOUT=3 "$(psql_cmd)" "$(database_url)" -X -A -t -q -c 'select 1' 2>&1 >/dev/null | sed 's/^/    psql: /' >&2 || true
			if pg_external; then
				die "the PostgreSQL at SWITCHBOARD_DATABASE_URL did not answer 'select 1' within ${TIMEOUT}s (SWITCHBOARD_INFRA_TIMEOUT)"
			fi
			die_with_log "$PG_LOG" "PostgreSQL did not answer 'select 1' on 127.0.0.1:$PG_PORT within ${TIMEOUT}s (SWITCHBOARD_INFRA_TIMEOUT)"
		fi
		sleep 1
	done
	if pg_external; then say "PostgreSQL at SWITCHBOARD_DATABASE_URL answers"; else say "PostgreSQL is up on 127.0.0.1:$PG_PORT (pid $(pg_pid))"; fi
}

stop_pg() {
	if ! pg_running; then
		pg_external || say "PostgreSQL is not running"
		return 0
	fi
	say "stopping PostgreSQL (pid $(pg_pid)) ..."
	# fast: roll back open transactions and disconnect clients, then a clean checkpoint.
	pg_run "$(pg_bin)/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" -s ||
		pg_run "$(pg_bin)/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t "$STOP_TIMEOUT" -s ||
		die_with_log "$PG_LOG" "PostgreSQL did not stop"
	say "PostgreSQL stopped"
}

# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------

cmd_up() {
	take_lock
	# Downloads and package installs first: they do not count against the readiness deadline.
	fetch_kafka_jars
	pg_external || need_pg_binaries
	local deadline=$(($(now) + TIMEOUT))
	launch_kafka # Kafka boots in the background while Postgres starts
	pg_external || start_pg "$deadline"
	wait_for_kafka "$deadline"
	wait_for_pg "$deadline"
	say "ready: SWITCHBOARD_KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP SWITCHBOARD_DATABASE_URL=$(database_url)"
}

cmd_down() {
	take_lock
	stop_kafka
	stop_pg # also when SWITCHBOARD_DATABASE_URL is set: a local cluster left running is ours to stop
}

cmd_kafka_start() {
	take_lock
	launch_kafka
	wait_for_kafka $(($(now) + TIMEOUT))
}

cmd_kafka_stop() {
	take_lock
	stop_kafka
}

# The outage tests stop and start the database the way an operator restarts it. A server of the
# user's own (SWITCHBOARD_DATABASE_URL) is never stopped from here.
refuse_external_pg() {
	pg_external && die "SWITCHBOARD_DATABASE_URL names a PostgreSQL server of your own; infra.sh $1 only stops and starts the local cluster (unset it, or restart your server yourself)"
	return 0
}

cmd_pg_stop() {
	refuse_external_pg pg-stop
	take_lock
	stop_pg
}

cmd_pg_start() {
	refuse_external_pg pg-start
	take_lock
	local deadline=$(($(now) + TIMEOUT))
	start_pg "$deadline"
	wait_for_pg "$deadline"
}

cmd_status() {
	local ok=0 pid
	if pid="$(kafka_pid)"; then
		if port_open "$KAFKA_PORT"; then
			echo "kafka:    running   pid $pid, bootstrap $KAFKA_BOOTSTRAP, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT"
		else
			echo "kafka:    starting  pid $pid, not yet listening on $KAFKA_BOOTSTRAP"
			ok=3
		fi
	else
		echo "kafka:    stopped   (would listen on $KAFKA_BOOTSTRAP, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
		ok=3
	fi
	echo "          version $KAFKA_VERSION, data $KAFKA_DATA, log $KAFKA_LOG"
	if pg_external; then
		if pg_answers; then echo "postgres: external  answers select 1 at SWITCHBOARD_DATABASE_URL"; else
			echo "postgres: external  does NOT answer at SWITCHBOARD_DATABASE_URL"
			ok=3
		fi
	elif pg_running; then
		if pg_answers; then
			echo "postgres: running   pid $(pg_pid), 127.0.0.1:$PG_PORT, database switchboard"
		else
			echo "postgres: running   pid $(pg_pid), but 'select 1' on 127.0.0.1:$PG_PORT fails"
			ok=3
		fi
		echo "          data $PG_DATA, log $PG_LOG"
	else
		echo "postgres: stopped   (would listen on 127.0.0.1:$PG_PORT)"
		echo "          data $PG_DATA, log $PG_LOG"
		ok=3
	fi
	return "$ok"
}

cmd_logs() {
	local -a files=()
	[[ -f "$KAFKA_LOG" ]] && files+=("$KAFKA_LOG")
	[[ -f "$PG_LOG" ]] && files+=("$PG_LOG")
	((${#files[@]})) || die "no log files yet ($KAFKA_LOG, $PG_LOG)"
	if [[ "${1:-}" == "-f" ]]; then
		exec tail -n 100 -F "${files[@]}"
	fi
	tail -n 100 "${files[@]}"
}

cmd_reset() {
	cmd_down
	say "deleting $KAFKA_DATA and $PG_DATA (the jars in $KAFKA_LIBS stay)"
	rm -rf "$KAFKA_DATA" "$KAFKA_CLUSTER_ID_FILE" "$KAFKA_CONFIG" "$PG_DATA"
}

cmd_env() {
	printf 'export %s=%q\n' SWITCHBOARD_KAFKA_BOOTSTRAP "$KAFKA_BOOTSTRAP"
	printf 'export %s=%q\n' SWITCHBOARD_DATABASE_URL "$(database_url)"
}

cmd_kafka_tool() {
	(($#)) || die "usage: infra.sh kafka-tool CLASS [ARGS...], e.g. org.apache.kafka.tools.TopicCommand --bootstrap-server $KAFKA_BOOTSTRAP --list"
	fetch_kafka_jars
	kafka_tool "$@"
}

# The browser tests (tests/browser) drive Debian's chromium through Playwright: no browser
# download (Playwright's own would need the internet), the distribution's package instead.
cmd_browser() {
	local chromium="${SWITCHBOARD_CHROMIUM:-/usr/bin/chromium}"
	if [[ -x "$chromium" ]]; then
		say "chromium: $("$chromium" --version 2>/dev/null | head -n 1)"
		return 0
	fi
	if is_root && [[ "$chromium" == /usr/bin/chromium ]]; then
		apt_install chromium
		[[ -x "$chromium" ]] || die "chromium is still missing after installing it"
		say "chromium: $("$chromium" --version 2>/dev/null | head -n 1)"
	else
		die "chromium not found at $chromium; install it with: sudo apt-get install -y chromium (or set SWITCHBOARD_CHROMIUM to a Chromium binary)"
	fi
}

# The AsyncAPI document (docs/asyncapi.yaml) is validated by the official parser from npm
# (tests/integration/test_asyncapi_validation.py). `npm ci` installs exactly the lock file's
# versions, without install scripts (one dependency's only script reports telemetry); it runs
# again only when the lock file changed (a stamp named after its hash).
cmd_asyncapi_tools() {
	local tools="$ROOT/tools/asyncapi"
	local stamp
	stamp="$tools/node_modules/.installed-$(sha1sum "$tools/package-lock.json" | cut -c1-12)"
	[[ -f "$stamp" ]] && return 0
	need_command node nodejs
	need_command npm npm
	local major
	major="$(node -p 'process.versions.node.split(".")[0]')"
	((major >= 18)) || die "Node.js 18 or later is needed for the AsyncAPI parser; this is $(node --version)"
	say "installing the AsyncAPI parser (npm ci in tools/asyncapi)"
	npm ci --prefix "$tools" --ignore-scripts --no-audit --no-fund --silent >&2 ||
		die "npm ci failed in $tools"
	touch "$stamp"
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
	local cmd="${1:-}"
	(($#)) && shift
	case "$cmd" in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	logs) cmd_logs "$@" ;;
	reset) cmd_reset ;;
	env) cmd_env ;;
	browser) cmd_browser ;;
	asyncapi-tools) cmd_asyncapi_tools ;;
	kafka-start) cmd_kafka_start ;;
	kafka-stop) cmd_kafka_stop ;;
	pg-start) cmd_pg_start ;;
	pg-stop) cmd_pg_stop ;;
	kafka-tool) cmd_kafka_tool "$@" ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
