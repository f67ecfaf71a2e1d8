#!/usr/bin/env bash
# A private nginx origin for tests: real range, ETag, TLS, auth and redirect
# behaviour from a production server, without touching the system's nginx.
#
# usage: nginx.sh start ROOT_DIR STATE_DIR   prints "http=PORT https=PORT ca=PATH"
#        nginx.sh stop  [ROOT_DIR] STATE_DIR
#
# Everything nginx writes (config, pid, logs, temp files, TLS keys, htpasswd)
# lives in STATE_DIR. Served on 127.0.0.1 only:
#   /NAME            ROOT_DIR/NAME, with byte ranges, ETag and Last-Modified
#   /private/NAME    the same file behind basic auth (user "user", password "secret")
#   /redirect/NAME   302 to /NAME
#   /gzip/NAME       the same file, gzip-encoded for a client that accepts it;
#                    gzip.log in STATE_DIR has its requests' Accept-Encoding,
#                    Content-Encoding and Range
#   /moved/NAME      301 to /NAME
#   /slow-send/NAME  ROOT_DIR/NAME with send_timeout 2s (a client that stops
#                    reading for longer has its connection closed)
#   /headers/NAME    ROOT_DIR/NAME with X-Test-Header: prefetchsrc and
#                    X-Test-Repeated twice (one, two): custom response headers
# The HTTPS listener speaks HTTP/1.1 and HTTP/2 (ALPN) with a certificate for
# 127.0.0.1 and localhost signed by a CA made here; trust it with ca=PATH.
# access.log in STATE_DIR has one line per request with its Range header and
# connection number, so a test can count requests and connections.
#
# start returns once nginx is listening (nginx binds before it daemonizes) and
# leaves no process holding its stdout, so a test can read it with popen().
set -euo pipefail

die() { echo "nginx.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 start ROOT_DIR STATE_DIR | stop [ROOT_DIR] STATE_DIR"; }

NGINX=${NGINX:-/usr/sbin/nginx}

# True while PID runs. A daemon's exited master is a zombie until init reaps
# it, which some containers' init does late; kill -0 would still succeed.
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# Two ports the kernel reports free right now. Another process may take one
# before nginx binds it; start() retries for that.
free_ports() {
  /usr/bin/python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
}

# A CA and a server certificate it signed, made once per STATE_DIR.
make_tls() {
  local dir=$1
  [[ -s $dir/server.crt ]] && return 0
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 30 -subj "/CN=prefetchsrc test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -new "${ec[@]}" -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  openssl x509 -req -days 30 -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/server.crt" 2>/dev/null -extfile <(printf '%s\n' \
      "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth")
}

write_config() {
  local root=$1 state=$2 http=$3 https=$4
  # Workers of a root master run as "nobody" by default and could not read a
  # private (mode 0700) test directory; keep them as the caller.
  local user=""
  [[ $(id -u) -eq 0 ]] && user="user root root;"
  cat >"$state/nginx.conf" <<CONF
# Written by tests/support/nginx/nginx.sh; regenerated on every start.
$user
daemon on;
worker_processes 1;
pid $state/nginx.pid;
error_log $state/error.log info;

events {
  worker_connections 256;
}

http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;

  log_format ranges '\$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent '
                    'range="\$http_range" conn=\$connection req=\$connection_requests '
                    'ua="\$http_user_agent" time=\$request_time';
  access_log $state/access.log ranges;
  log_format gzipped '"\$request" \$status range="\$http_range" '
                     'accept="\$http_accept_encoding" encoding="\$sent_http_content_encoding"';

  client_body_temp_path $state/tmp/body;
  proxy_temp_path $state/tmp/proxy;
  fastcgi_temp_path $state/tmp/fastcgi;
  uwsgi_temp_path $state/tmp/uwsgi;
  scgi_temp_path $state/tmp/scgi;

  sendfile on;
  keepalive_timeout 30s;

  server {
    listen 127.0.0.1:$http;
    listen 127.0.0.1:$https ssl http2;
    ssl_certificate $state/server.crt;
    ssl_certificate_key $state/server.key;

    root $root;

    location /private/ {
      auth_basic "prefetchsrc tests";
      auth_basic_user_file $state/htpasswd;
      alias $root/;
    }

    location /gzip/ {
      alias $root/;
      gzip on;
      gzip_types *;
      gzip_min_length 0;
      access_log $state/gzip.log gzipped;
    }

    location ~ ^/redirect/(.*)\$ {
      return 302 /\$1\$is_args\$args;
    }

    location ~ ^/moved/(.*)\$ {
      return 301 /\$1\$is_args\$args;
    }

    # A server that gives up on a client that stops reading for 2 s (its
    # send timeout): a paused span must resume without an error.
    location /slow-send/ {
      alias $root/;
      send_timeout 2s;
    }

    # The disk cache's tests: answers fresh for an hour, or to be
    # revalidated on every use.
    location /fresh/ {
      alias $root/;
      add_header Cache-Control "max-age=3600";
    }

    # Each answer at most 4 MiB/s: a play that lasts long enough to be
    # killed midway.
    location /capped/ {
      alias $root/;
      limit_rate 4m;
    }

    location /no-cache/ {
      alias $root/;
      add_header Cache-Control "no-cache";
    }

    location /headers/ {
      alias $root/;
      add_header X-Test-Header prefetchsrc;
      add_header X-Test-Repeated one;
      add_header X-Test-Repeated two;
    }
  }
}
CONF
}

start() {
  local root state
  root=$(realpath "$1")
  mkdir -p "$2/tmp"
  state=$(realpath "$2")
  [[ -d $root ]] || die "no such directory: $root"
  if [[ -s $state/nginx.pid ]] && alive "$(cat "$state/nginx.pid")"; then
    die "already running in $state (pid $(cat "$state/nginx.pid"))"
  fi
  make_tls "$state"
  printf 'user:%s\n' "$(openssl passwd -apr1 secret)" >"$state/htpasswd"

  local attempt http https err
  for attempt in 1 2 3 4 5; do
    read -r http https < <(free_ports)
    write_config "$root" "$state" "$http" "$https"
    # -e: the log for errors before the config is read (default is under /var/log).
    if err=$("$NGINX" -q -p "$state" -e "$state/error.log" -c "$state/nginx.conf" 2>&1); then
      echo "http=$http https=$https ca=$state/ca.crt" | tee "$state/ports"
      return 0
    fi
    [[ $err == *"Address already in use"* ]] || break
  done
  die "nginx did not start after $attempt attempt(s): $err"
}

stop() {
  local state=$1 pidfile=$1/nginx.pid pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || return 0
  # Wait so that the next test can reuse STATE_DIR and its files are complete.
  for _ in $(seq 100); do
    alive "$pid" || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

case ${1:-} in
  start) [[ $# -eq 3 ]] || usage; start "$2" "$3" ;;
  stop) [[ $# -eq 2 || $# -eq 3 ]] || usage; stop "${!#}" ;;
  *) usage ;;
esac
