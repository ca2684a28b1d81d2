#!/bin/sh
# Installs the system tools the tests, the example recorder and the benchmark need: a real Samba
# server and clients, tcpdump to capture, tshark as the independent oracle, ethtool/iproute2 for the
# lab's network namespaces, file(1) to check the executables it builds, Info-ZIP's zip to write the
# zipped inputs the tests read (with a password too), Chromium for the HTML report's browser tests
# (driven by Playwright's Python package, never its own browser download); gcc and the Python
# headers to compile the packet path (setup.py; tests/test_build.py checks it is). Debian/Ubuntu,
# as root.
# Idempotent: does nothing when every tool is already there.
set -eu

# tool:package for every tool the lab runs (tests/lab.py TOOLS), tshark, file(1), zip and Chromium
NEEDED="smbd:samba smbpasswd:samba-common-bin net:samba-common-bin
smbclient:smbclient rpcclient:smbclient tcpdump:tcpdump tshark:tshark ethtool:ethtool
ip:iproute2 ss:iproute2 taskset:util-linux unshare:util-linux file:file cc:gcc zip:zip
chromium:chromium"

missing=""
for pair in $NEEDED; do
    tool=${pair%%:*}
    package=${pair#*:}
    if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
        case " $missing " in *" $package "*) ;; *) missing="$missing $package" ;; esac
    fi
done

# Python.h of the interpreter the venv is made from (Debian's python3: python3-dev)
PYTHON=${PYTHON:-python3}
include=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
if [ ! -f "$include/Python.h" ]; then
    missing="$missing python3-dev"
fi

if [ -z "$missing" ]; then
    echo "install-test-deps: all test tools present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing packages:$missing; run this script as root" >&2
    exit 1
fi

echo "install-test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update
# shellcheck disable=SC2086  # the package list is meant to split
apt-get install -y --no-install-recommends $missing
