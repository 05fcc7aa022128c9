# Sourced by kafka-up.sh and kafka-down.sh, after `port` is set: where the local broker on that port
# keeps its state, and which process is that broker.
state=${PATHSTREAM_RUN_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/pathstream}/kafka-$port
pidfile="$state/broker.pid"

# The pid in the pid file, if that process is still this broker (a pid left by a broker that died
# with the machine may since belong to something else). `-ww`: without it ps cuts the command line
# at the width it believes the terminal has (under pytest-xdist, 80 columns), which dropped the
# server.properties path and made a running broker look dead.
running_pid() {
  local pid
  [ -f "$pidfile" ] && pid=$(cat "$pidfile") && [[ "$pid" =~ ^[0-9]+$ ]] \
    && ps -ww -p "$pid" -o args= 2>/dev/null | grep -qF "$state/server.properties" && echo "$pid"
}
