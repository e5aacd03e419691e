#!/usr/bin/env bash
# The README's "run" command: a private httpd with mod_resumable and the demo
# page, on 127.0.0.1 only. Debian 12, as root, from a clean clone; idempotent.
#
#   tools/run.sh          install what is missing, build, (re)start the demo
#   tools/run.sh stop     stop the demo server
#   tools/run.sh status   is it running?
#   PORT=9090 tools/run.sh    another port (default 8080)
#
# Everything it writes lives in <repo>/run/ (gitignored): httpd.conf (from
# conf/demo.conf.in), htdocs/ (a copy of htdocs/ + vendor/: tus.min.js,
# flow.min.js, resumable.js, jquery.min.js, spark-md5.min.js from
# node_modules), files/, seeds/ (the seed pages' area) and state/ (the
# uploads, kept across restarts), logs/, rt/ (pid file, mutexes). It never
# touches /etc/apache2 and never starts the system's apache2 service.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUN="$REPO/run"
PORT=${PORT:-8080}
APACHE=${APACHE:-/usr/sbin/apache2}
MODDIR=${MODDIR:-/usr/lib/apache2/modules}
RUN_USER=${RUN_USER:-www-data}
RUN_GROUP=${RUN_GROUP:-www-data}
CONF="$RUN/httpd.conf"
PIDFILE="$RUN/rt/httpd.pid"

say() { printf 'run.sh: %s\n' "$*"; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

case "$PORT" in
    ''|*[!0-9]*) die "PORT must be a number, not '$PORT'" ;;
esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "PORT out of range: $PORT"

# ---- the private instance ----------------------------------------------------

# pid of our running httpd parent, or nothing
our_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 0
    pid=$(tr -dc 0-9 < "$PIDFILE")
    [ -n "$pid" ] || return 0
    # only if that pid is still an apache2 (not a recycled pid)
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = apache2 ]; then
        echo "$pid"
    fi
}

stop_instance() {
    local pid i
    pid=$(our_pid)
    if [ -z "$pid" ]; then
        rm -f "$PIDFILE"
        return 0
    fi
    say "stopping the demo server (pid $pid)"
    if [ -f "$CONF" ]; then
        "$APACHE" -d "$RUN" -f "$CONF" -k stop 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    for i in $(seq 1 100); do          # up to 10 s
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
        say "pid $pid did not stop in 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PIDFILE"
}

# HTTP status of GET <path> on 127.0.0.1:$PORT, or nothing (bash only: curl
# may not be installed)
http_status() {
    local path=$1 line=''
    (
        exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 0
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
        IFS= read -r -t 2 line <&3 || true
        exec 3<&-
        line=${line%$'\r'}
        case "$line" in
            HTTP/*) set -- $line; echo "$2" ;;
        esac
    ) 2>/dev/null || true
}

port_in_use() {
    ( exec 3<>"/dev/tcp/127.0.0.1/$PORT" ) 2>/dev/null
}

case "${1:-start}" in
    stop)
        stop_instance
        say "stopped"
        exit 0
        ;;
    status)
        pid=$(our_pid)
        if [ -n "$pid" ]; then
            say "running (pid $pid); config $CONF"
            exit 0
        fi
        say "not running"
        exit 3
        ;;
    start|restart|'') ;;
    -h|--help|help)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown command '$1' (start, stop, status)" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and runs httpd as $RUN_USER)"

# ---- packages ----------------------------------------------------------------
need=(apache2 apache2-dev libssl-dev libjansson-dev make gcc)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
# Node for the demo's browser bundle (tus-js-client): Debian's nodejs is >= 18
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Installing apache2 would start the system service: forbid that for this
    # transaction with a temporary policy-rc.d (only if none exists).
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        made_policy=1
        trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
    fi
    # update the package lists only when one of them is not to be had yet
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ -n "$made_policy" ]; then
        rm -f "$policy"
        made_policy=
    fi
fi
# the libraries httpd was built against, not older ones left on the machine
"$REPO/tools/sync-libs.sh"
id "$RUN_USER" >/dev/null 2>&1 || die "no user $RUN_USER (RUN_USER=)"

# ---- npm ci (the browser files the pages load from /vendor/) ----------------
# name in vendor/ : path in node_modules/
VENDOR="tus.min.js:tus-js-client/dist/tus.min.js
flow.min.js:@flowjs/flow.js/dist/flow.min.js
resumable.js:resumablejs/resumable.js
jquery.min.js:jquery/dist/jquery.min.js
spark-md5.min.js:spark-md5/spark-md5.min.js"
vendor_missing() {
    local v
    for v in $VENDOR; do
        [ -f "node_modules/${v#*:}" ] || { echo "node_modules/${v#*:}"; return 0; }
    done
}
cd "$REPO"
if [ -n "$(vendor_missing)" ] \
        || [ ! -f node_modules/.package-lock.json ] \
        || [ package-lock.json -nt node_modules/.package-lock.json ] \
        || [ package.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
fi
miss=$(vendor_missing)
[ -z "$miss" ] || die "$miss missing after npm ci"

# ---- build --------------------------------------------------------------------
say "make"
mkdir -p "$RUN/logs"
if ! make > "$RUN/logs/make.log" 2>&1; then
    tail -n 30 "$RUN/logs/make.log" >&2
    die "make failed (full output: $RUN/logs/make.log)"
fi
MODULE="$REPO/.libs/mod_resumable.so"
[ -f "$MODULE" ] || die "make did not produce $MODULE"

# ---- stop a previous instance before rewriting its config ---------------------
stop_instance

# ---- the run dir -------------------------------------------------------------
mkdir -p "$RUN"/{logs,rt,files,seeds,state}
chown "$RUN_USER:$RUN_GROUP" "$RUN/files" "$RUN/seeds" "$RUN/state"
chmod 750 "$RUN/files" "$RUN/seeds" "$RUN/state"

rm -rf "$RUN/htdocs.new"
cp -r "$REPO/htdocs" "$RUN/htdocs.new"
mkdir -p "$RUN/htdocs.new/vendor"
for v in $VENDOR; do
    cp "node_modules/${v#*:}" "$RUN/htdocs.new/vendor/${v%%:*}"
done
[ -f node_modules/tus-js-client/LICENSE ] \
    && cp node_modules/tus-js-client/LICENSE "$RUN/htdocs.new/vendor/tus-js-client.LICENSE.txt"
chmod -R a+rX "$RUN/htdocs.new"
rm -rf "$RUN/htdocs"
mv "$RUN/htdocs.new" "$RUN/htdocs"

esc() { printf '%s' "$1" | sed 's/[\\&|]/\\&/g'; }
sed -e "s|@ROOT@|$(esc "$RUN")|g" \
    -e "s|@PORT@|$PORT|g" \
    -e "s|@MODULE@|$(esc "$MODULE")|g" \
    -e "s|@REPO@|$(esc "$REPO")|g" \
    -e "s|@MODDIR@|$(esc "$MODDIR")|g" \
    -e "s|@USER@|$(esc "$RUN_USER")|g" \
    -e "s|@GROUP@|$(esc "$RUN_GROUP")|g" \
    "$REPO/conf/demo.conf.in" > "$CONF.new"
if grep -n '@[A-Z]*@' "$CONF.new"; then
    die "unreplaced placeholders in $CONF.new"
fi
mv "$CONF.new" "$CONF"

if ! out=$("$APACHE" -d "$RUN" -f "$CONF" -t 2>&1); then
    printf '%s\n' "$out" >&2
    die "httpd -t failed for $CONF"
fi

# ---- start -------------------------------------------------------------------
if port_in_use; then
    die "127.0.0.1:$PORT is already in use by another program (try PORT=...)"
fi
say "starting httpd on 127.0.0.1:$PORT"
errlog_pos=$(stat -c %s "$RUN/logs/error.log" 2>/dev/null || echo 0)
"$APACHE" -d "$RUN" -f "$CONF" -k start

ok=
for i in $(seq 1 150); do               # up to 15 s
    st=$(http_status /)
    if [ "$st" = 200 ]; then ok=1; break; fi
    if [ "$i" -gt 10 ] && [ -z "$(our_pid)" ]; then break; fi
    sleep 0.1
done
if [ -z "$ok" ]; then
    say "the server did not answer on http://127.0.0.1:$PORT/ (last status: ${st:-none})"
    if [ -f "$RUN/logs/error.log" ]; then
        tail -c +"$((errlog_pos + 1))" "$RUN/logs/error.log" | tail -20 >&2
    fi
    exit 1
fi

cat <<EOF

mod_resumable demo is running (pid $(our_pid)):

  demo page        http://127.0.0.1:$PORT/
  upload endpoint  http://127.0.0.1:$PORT/files/   (tus 1.0.0)
  seed pages       http://127.0.0.1:$PORT/seeds/001-offset.html, 000-slice.html,
                   000-download.html, flow.html, resumable.html;
                   002-md5.html only at http://localhost:8000/ (PORT=8000)
  server status    http://127.0.0.1:$PORT/server-status

  uploads          $RUN/files (tus), $RUN/seeds (seed pages)
  logs             $RUN/logs/error.log, $RUN/logs/access.log
  stop             tools/run.sh stop

EOF
