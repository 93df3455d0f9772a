#!/usr/bin/env bash
# Stops the daemons tests/slurm/start.sh started (by the pids it recorded, last first).
#   tests/slurm/stop.sh [DIR]
DIR="${1:-/tmp/convlab-slurm}"
[ -f "$DIR/pids" ] || exit 0
tac "$DIR/pids" | while read -r pid; do
    kill "$pid" 2>/dev/null || true
done
for _ in $(seq 50); do
    alive=0
    while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$DIR/pids"
    [ "$alive" = 0 ] && break
    sleep 0.1
done
while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$DIR/pids"
: > "$DIR/pids"
