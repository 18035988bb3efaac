#!/bin/sh
# What the tests drive besides Node: curl, openssl (TLS certificates), jq
# (the README's load-test script), man (man-db: the install test finds the
# installed pages with man -w), Debian's chromium and firefox-esr (the browser
# tests, through puppeteer-core: no browser download), redis-server and
# redis-tools (the --bus redis tests start their own; redis-benchmark for
# bench:redis), nats-server (the NATS JetStream link's tests start their
# own), nginx-light and libnginx-mod-nchan (test-sub and test-pub against
# nginx+nchan, the peer of `npm run bench -- --peer nchan`), gcc (npm run build
# compiles the native sender, src/native/send-many.c). Installs whatever is
# missing with apt-get when run as root; otherwise says what is missing (the
# tests that need it then fail or, for the browser, are skipped).
need=""
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v jq >/dev/null 2>&1 || need="$need jq"
command -v man >/dev/null 2>&1 || need="$need man-db"
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -x /usr/bin/firefox-esr ] || need="$need firefox-esr"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v redis-benchmark >/dev/null 2>&1 || need="$need redis-tools"
command -v nats-server >/dev/null 2>&1 || need="$need nats-server"
command -v cc >/dev/null 2>&1 || need="$need gcc"
[ -x /usr/sbin/nginx ] || need="$need nginx-light"
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || need="$need libnginx-mod-nchan"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the tests' tools:$need" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null ||
    echo "could not install:$need (the tests that need them will fail or be skipped)" >&2
else
  echo "missing for the tests:$need (install them, e.g. sudo apt-get install$need)" >&2
fi
