#!/bin/sh
# Sets smbwatch up and runs it on the capture the repository ships (examples/).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-venv.sh
.venv/bin/smbwatch events examples/lateral-movement.pcap --format table
# detect exits 1 when alerts fire (they do on this example): that is its answer, not a failure
.venv/bin/smbwatch detect examples/lateral-movement.pcap --format table || [ $? -eq 1 ]
