#!/usr/bin/env bash
# Bring the libraries the installed httpd was built against up to the
# versions apt offers (Debian 12, root). apt-get install of apache2 does not
# upgrade a dependency that is already installed at a lower version that still
# satisfies the package's Depends line, but its modules may have been built
# against the newer one (mod_ssl compiled against OpenSSL 3.0.22 on a machine
# with libssl3 3.0.19: AH01882 at every start). Idempotent: upgrades only
# packages whose installed version differs from apt's candidate.
set -euo pipefail

# installed packages httpd (and the -dev headers we build against) depend on
deps() {
    local p
    for p in apache2-bin apache2-dev libssl-dev libjansson-dev; do
        dpkg-query -W -f='${Depends}\n' "$p" 2>/dev/null || true
    done | tr ',|' '\n\n' | sed -e 's/([^)]*)//g' -e 's/:any//g' -e 's/[[:space:]]//g' \
         | grep '^lib' | sort -u
}

stale=()
for p in $(deps); do
    inst=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null \
           | awk '/install ok installed/ {print $4}') || true
    [ -n "$inst" ] || continue
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$cand" ] && [ "$cand" != "(none)" ] && [ "$cand" != "$inst" ] \
       && dpkg --compare-versions "$cand" gt "$inst"; then
        stale+=("$p")
    fi
done
# a library's -dev package pins its exact version: upgrade them together
if [ ${#stale[@]} -gt 0 ]; then
    for d in libssl-dev; do
        dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed" \
            && stale+=("$d")
    done
    echo "sync-libs: upgrading ${stale[*]} to what httpd was built against"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --only-upgrade \
        --no-install-recommends "${stale[@]}" >/dev/null
fi
