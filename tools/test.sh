#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian 12, root),
# builds the module with warnings as errors, runs the C unit tests, a short
# run of every fuzz target, the layer/export lint and the pytest suite
# against real httpd instances.
# Idempotent; safe to run again. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=(apache2 apache2-dev apache2-utils libssl-dev libjansson-dev make gcc
           curl openssl python3-pytest python3-requests procps chromium
           clang libclang-rt-14-dev debhelper dpkg-dev fakeroot strace
           postgresql libaprutil1-dbd-pgsql     # cluster tests (test_10xx)
           glusterfs-server                     # their FUSE tier (test_1010)
           iproute2)                            # netns partition (test_1030)
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # installing apache2 must not start the system service (tests run their
    # own httpd): a temporary policy-rc.d, only if there is none
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$made_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
fi
# A consistent system: apt installs the newest apache2, whose modules may be
# built against newer libraries than the ones the machine already has (mod_ssl
# built for a newer libssl3 warns AH01882 at every start). Upgrade every
# installed library httpd depends on to the version apt offers.
tools/sync-libs.sh
if ! command -v npm >/dev/null 2>&1; then
    echo "test.sh: installing nodejs npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ -f package-lock.json ] && { [ ! -d node_modules ] \
        || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    npm ci --no-audit --no-fund --loglevel=error
fi

make WERROR=1
make WERROR=1 unit
make fuzz FUZZ_SECONDS=5
make lint
# the request paths under ASan+UBSan: the HTTP-level fuzzer and the hostile
# suites (cross-protocol, overflow, client faults), the cluster's leases and
# fencing, checksums digested by the worker thread, the kept-open state
# database; any sanitizer report or child crash fails them
RS_FUZZ_COUNT=20000 make asan-test PYTEST_ARGS="-p no:cacheprovider \
    test/modules/resumable/test_972_fuzz.py \
    test/modules/resumable/test_971_overflow.py \
    test/modules/resumable/test_960_crossproto.py \
    test/modules/resumable/test_940_hostile.py \
    test/modules/resumable/test_1040_cluster_fencing.py \
    test/modules/resumable/test_267_checksum_follow.py \
    test/modules/resumable/test_264_statedb_kept_open.py"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider test "$@"
