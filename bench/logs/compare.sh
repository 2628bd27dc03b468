#!/usr/bin/env bash
# bench/logs/compare.sh: the loads of bench/logs under pm2 and supervisord,
# for their figures beside vigil's. Needs pm2 (npm install -g pm2) and
# supervisord (apt-get install supervisor); run from the repository's root:
#
#   bench/logs/compare.sh [pm2|supervisord|all]   (DURATION=10s CHILDREN=100 RATE=1000)
#
# For each: one child writing 100-byte lines as fast as it can (one
# write(2) each), then CHILDREN children writing RATE lines a second each;
# the lines that reach the log files, the daemon's CPU time (utime+stime
# from /proc, 10 ms ticks), and the children's own report (write latency,
# writes that found the pipe full).
set -euo pipefail
which=${1:-all}
DURATION=${DURATION:-10s}
CHILDREN=${CHILDREN:-100}
RATE=${RATE:-1000}
tmp=$(mktemp -d /tmp/bench-logs-compare-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/writer" ./bench/logs/writer
go build -o "$tmp/bench" ./bench/logs
tick=$(getconf CLK_TCK)

cpu() { # utime+stime of pid, in seconds (fields 14 and 15, counted after the
	# command's name, which may hold spaces)
	sed 's/.*) //' "/proc/$1/stat" | awk -v t="$tick" '{ printf "%.2f", ($12 + $13) / t }'
}

# lines N FILES...: lines in the files (every line is 100 bytes).
lines() {
	local total=0 f
	for f in "$@"; do total=$((total + $(stat -c %s "$f") / 100)); done
	echo "$total"
}

wait_reports() { # count pattern
	local n=$1 pattern=$2 i
	for i in $(seq 1 600); do
		# shellcheck disable=SC2086
		if [ "$(ls $pattern 2>/dev/null | wc -l)" -ge "$n" ]; then return 0; fi
		sleep 0.1
	done
	echo "reports missing" >&2
	return 1
}

run_pm2() { # name count args...
	local name=$1 count=$2; shift 2
	export PM2_HOME="$tmp/pm2-$name"
	pm2 ping >/dev/null
	local pid; pid=$(cat "$PM2_HOME/pm2.pid")
	{
		echo '{"apps": ['
		for i in $(seq 1 "$count"); do
			[ "$i" -gt 1 ] && echo ','
			printf '{"name": "w%d", "script": "%s", "args": "%s -report %s/pm2-%s-%d.json", "autorestart": false, "out_file": "%s/pm2-%s-%d.log", "error_file": "%s/pm2-%s-%d.err", "merge_logs": true}' \
				"$i" "$tmp/writer" "$*" "$tmp" "$name" "$i" "$tmp" "$name" "$i" "$tmp" "$name" "$i"
		done
		echo ']}'
	} >"$tmp/eco-$name.json"
	local c0; c0=$(cpu "$pid")
	pm2 start "$tmp/eco-$name.json" >/dev/null
	wait_reports "$count" "$tmp/pm2-$name-*.json"
	sleep 2 # the daemon writes what it still holds
	local c1; c1=$(cpu "$pid")
	echo "pm2 $(pm2 --version | tail -1): $name"
	echo "  lines that reached the files   $(lines "$tmp"/pm2-"$name"-*.log)"
	echo "  pm2 daemon CPU                 $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f s", b - a }')"
	"$tmp/bench" -reports "$tmp/pm2-$name-*.json"
	pm2 kill >/dev/null
}

run_supervisord() { # name count args...
	local name=$1 count=$2; shift 2
	local conf="$tmp/sd-$name.conf"
	cat >"$conf" <<CONF
[supervisord]
logfile=$tmp/daemon-sd-$name.log
pidfile=$tmp/sd-$name.pid
childlogdir=$tmp
[unix_http_server]
file=$tmp/sd-$name.sock
[supervisorctl]
serverurl=unix://$tmp/sd-$name.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[program:w]
command=$tmp/writer $* -report $tmp/sd-$name-%(process_num)03d.json
numprocs=$count
process_name=%(program_name)s_%(process_num)03d
autostart=false
autorestart=false
startsecs=0
stdout_logfile=$tmp/sd-$name-%(process_num)03d.log
stdout_logfile_maxbytes=0
stderr_logfile=$tmp/sd-$name-%(process_num)03d.err
CONF
	supervisord -c "$conf"
	for i in $(seq 1 100); do [ -s "$tmp/sd-$name.pid" ] && break; sleep 0.1; done
	local pid; pid=$(cat "$tmp/sd-$name.pid")
	local c0; c0=$(cpu "$pid")
	supervisorctl -c "$conf" start 'w:*' >/dev/null
	wait_reports "$count" "$tmp/sd-$name-*.json"
	sleep 2
	local c1; c1=$(cpu "$pid")
	echo "supervisord $(supervisord --version): $name"
	echo "  lines that reached the files   $(lines "$tmp"/sd-"$name"-*.log)"
	echo "  supervisord CPU                $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f s", b - a }')"
	"$tmp/bench" -reports "$tmp/sd-$name-*.json"
	kill "$pid"
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

if [ "$which" = pm2 ] || [ "$which" = all ]; then
	run_pm2 one 1 -duration "$DURATION"
	run_pm2 many "$CHILDREN" -duration "$DURATION" -rate "$RATE"
fi
if [ "$which" = supervisord ] || [ "$which" = all ]; then
	run_supervisord one 1 -duration "$DURATION"
	run_supervisord many "$CHILDREN" -duration "$DURATION" -rate "$RATE"
fi
