#!/bin/sh
# Sets smbwatch up and runs it on the capture the repository ships (examples/).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-venv.sh
.venv/bin/smbwatch events examples/lateral-movement.pcap --format table
# detect and incidents exit 1 when alerts fire (they do on this example): their answer, not a failure
.venv/bin/smbwatch detect examples/lateral-movement.pcap --format table || [ $? -eq 1 ]
.venv/bin/smbwatch incidents examples/lateral-movement.pcap --format table || [ $? -eq 1 ]
mkdir -p build
.venv/bin/smbwatch report examples/lateral-movement.pcap -o build/example-report.html
echo "the report: build/example-report.html (one file; open it in a browser, offline)"
