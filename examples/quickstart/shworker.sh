#!/bin/sh
# An example vigil worker in plain POSIX sh. It speaks only the readiness
# protocol: JSON lines on the file descriptor named by NOTIFY_PIPE (3 under
# vigil). Anything that can write a line to a file descriptor can do this.
fd=${NOTIFY_PIPE:-}
say() { [ -n "$fd" ] && printf '%s\n' "$1" >&"$fd"; }

echo "shworker: pid $$, instance ${VIGIL_INSTANCE:-?}"
say '{"status":"warming up"}'
sleep 1
say '{"ready":true,"status":"serving"}'

trap 'say "{\"stopping\":true}"; echo "shworker: stopping"; exit 0' INT TERM
while :; do
	sleep 5 &
	wait $!
	say '{"healthy":true}'
done
