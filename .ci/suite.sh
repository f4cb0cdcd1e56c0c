#!/usr/bin/env bash
# One CI leg's tests, in a checkout that scripts/setup.sh has set up: the README's test command with
# deprecation warnings shown and GDAL's stderr let through, then .ci/deprecations.py on its log.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/ci-pytest.XXXXXX.log)
echo "=== testing on: $(.venv/bin/python .ci/versions.py)"
rc=0
# --capture=sys: Python's output stays captured, C-level stderr (GDAL's warnings) reaches the log.
bash scripts/test.sh -q --capture=sys -W default::DeprecationWarning -W default::PendingDeprecationWarning \
  2>&1 | tee "$log" || rc=$?
.venv/bin/python .ci/deprecations.py "$log" || rc=$((rc ? rc : 1))
rm -f "$log"
exit "$rc"
