# need.sh - what a test needs from the host, and what happens when it is missing (sourced by lib.sh
# and by the tests that do not use lib.sh).
#
# A test that cannot run here exits 77, which ctest reports as skipped. CI's machines have all of it
# (root, runc, overlayfs, the tools), so under CI (CSTORE_CI=1) a missing requirement is a failure
# instead: a skip there would hide a test that never ran.

# skip WHY: stops the test: exit 77, or exit 1 under CSTORE_CI=1.
skip() {
    if [ "${CSTORE_CI:-0}" = 1 ]; then
        echo "FAIL - $* (CSTORE_CI=1: CI must have it)"
        _skip_rc=1
    else
        echo "SKIP: $*"
        _skip_rc=77
    fi
    exit "$_skip_rc"
}

# need WHAT...: each of root, overlayfs, a path (/bin/busybox) or a command on PATH (runc, jq...);
# skips (see skip) at the first one missing.
need() {
    local t
    for t in "$@"; do
        case $t in
        root) [ "$(id -u)" = 0 ] || skip "needs root" ;;
        overlayfs) grep -qw overlay /proc/filesystems 2>/dev/null || skip "needs overlayfs" ;;
        /*) [ -e "$t" ] || skip "needs '$t'" ;;
        *) command -v "$t" >/dev/null || skip "'$t' not installed" ;;
        esac
    done
}
