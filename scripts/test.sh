#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Installs what is missing, builds nsplit and runs the whole test suite:
#   1. build/      (NSPLIT_BUILD_DIR):      every suite (unit, integration, accuracy, ...)
#   2. build-asan/ (NSPLIT_ASAN_BUILD_DIR): -Db_sanitize=address,undefined, suite unit only
# and ends with one line "N passed, N failed, N skipped" summed over both runs, read from
# meson's testlog.json. Exits non-zero if anything failed. With CI=true a skipped test (exit 77)
# counts as failed, and the summary says which.
# Extra arguments are passed to the first `meson test` (e.g. --suite unit).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
ASAN_DIR=${NSPLIT_ASAN_BUILD_DIR:-build-asan}

# shellcheck source=scripts/deps.sh
source "$ROOT/scripts/deps.sh"
if ! nsl_install_deps; then
	echo "test.sh: cannot install the dependencies; stopping" >&2
	exit 1
fi

# Reasons that make the run fail without a test result (a build that did not build).
errors=()
# "label=path/to/testlog.json" for each meson test run.
logs=()

# Configures (or reconfigures) and builds one build folder; returns non-zero on failure.
configure_and_build() {
	local dir=$1
	shift
	local setup_log rc=0
	setup_log=$(mktemp)
	if [[ -f "$dir/meson-private/coredata.dat" ]]; then
		if ! meson setup --reconfigure "$dir" "$@" >"$setup_log" 2>&1; then
			echo "test.sh: reconfigure of $dir failed, setting it up anew"
			meson setup --wipe "$dir" "$@" >"$setup_log" 2>&1 || rc=$?
		fi
	else
		meson setup "$dir" "$@" >"$setup_log" 2>&1 || rc=$?
	fi
	if ((rc != 0)); then
		tail -n 40 "$setup_log"
		rm -f "$setup_log"
		return 1
	fi
	rm -f "$setup_log"
	ninja -C "$dir"
}

# Runs meson test in one build folder; the results are read from its testlog.json later.
run_tests() {
	local label=$1 dir=$2
	shift 2
	local log="$dir/meson-logs/testlog.json"
	rm -f "$log"
	echo "== test.sh: $label: meson test $*"
	# meson's exit status only matters when it wrote no testlog.json: that happens with no
	# tests to run (status 0) and when meson itself fails (non-zero). Otherwise the log has
	# every result.
	local rc=0
	meson test -C "$dir" --no-rebuild "$@" || rc=$?
	if [[ -f "$log" ]]; then
		logs+=("$label=$log")
	elif ((rc != 0)); then
		errors+=("$label: meson test failed (exit $rc) and wrote no $log")
	else
		echo "test.sh: $label: no tests to run"
	fi
}

echo "== test.sh: build $BUILD_DIR"
if configure_and_build "$BUILD_DIR"; then
	run_tests "$BUILD_DIR" "$BUILD_DIR" "$@"
else
	errors+=("$BUILD_DIR: build failed")
fi

# werror off here only: GCC's sanitizer instrumentation raises false warnings
# (-Wmaybe-uninitialized, -Wstringop-overflow) that the plain build does not.
echo "== test.sh: build $ASAN_DIR (address, undefined sanitizers)"
if configure_and_build "$ASAN_DIR" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false; then
	# UBSan only prints by default; a report must fail the test.
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_tests "$ASAN_DIR" "$ASAN_DIR" --suite unit --timeout-multiplier 3
else
	errors+=("$ASAN_DIR: build failed")
fi

# Summary: the last line printed is the only "N passed, N failed, N skipped" line.
/usr/bin/python3 - "${logs[@]}" -- "${errors[@]}" <<'PYEOF'
import json
import os
import sys

TAIL_LINES = 40
PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}
# FAIL, TIMEOUT, UNEXPECTEDPASS, ERROR and anything unknown count as failed.

args = sys.argv[1:]
sep = args.index("--")
logs, errors = args[:sep], args[sep + 1:]
ci = os.environ.get("CI", "").lower() == "true"

passed = failed = skipped = 0
failures, skips = [], []
for item in logs:
    label, path = item.split("=", 1)
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                errors.append(f"{path}:{n}: unreadable line")
                continue
            name = f"{label}: {rec.get('name', '?')}"
            result = rec.get("result", "?")
            if result in PASSED:
                passed += 1
            elif result in SKIPPED:
                skips.append((name, rec))
            else:
                failures.append((name, result, rec))


def tail(rec):
    out = (rec.get("stdout") or "") + (rec.get("stderr") or "")
    return out.rstrip("\n").splitlines()[-TAIL_LINES:]


for name, result, rec in failures:
    print(f"---- {name}: {result} (exit {rec.get('returncode')}), last lines:")
    for line in tail(rec) or ["(no output)"]:
        print(f"    {line}")
for name, rec in skips:
    reason = tail(rec)[-1:] or ["(no message)"]
    print(f"---- {name}: SKIP: {reason[0]}")
for err in errors:
    print(f"---- {err}")

failed = len(failures) + len(errors)
skipped = len(skips)
if ci and skips:
    print("CI=true: skipped tests count as failed: " + ", ".join(n for n, _ in skips))
    failed += skipped
    skipped = 0
if failures:
    print("failed: " + ", ".join(n for n, _, _ in failures))
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PYEOF
