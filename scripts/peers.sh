# Shared by scripts/test and scripts/bench: installs the test peers.
# Source it from the repository root. With CI set, a peer that cannot be
# installed is a failure, never a skip.

have() { command -v "$1" >/dev/null 2>&1; }

apt_updated=""
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Debian's age: the interop test decrypts an age slot with stock `age -d`.
if ! have age; then
    echo "peers: installing Debian's age package (interop test peer)"
    if ! apt_install age || ! have age; then
        if [ -n "${CI:-}" ]; then
            echo "peers: error: could not install age, and CI is set" >&2
            exit 1
        fi
        echo "peers: warning: age is not installed; the interop tests will skip" >&2
    fi
fi

# Debian's zsh: a test completes a record name at zsh's first TAB through
# the script the package installs in zsh's fpath.
if ! have zsh; then
    echo "peers: installing Debian's zsh package (completion test peer)"
    if ! apt_install zsh || ! have zsh; then
        if [ -n "${CI:-}" ]; then
            echo "peers: error: could not install zsh, and CI is set" >&2
            exit 1
        fi
        echo "peers: warning: zsh is not installed; the zsh completion test will skip" >&2
    fi
fi
if have zsh; then
    export TOKVAULT_TEST_ZSH="$(command -v zsh)"
fi

echo "peers: age $(age --version 2>/dev/null || echo missing), $(cargo --version)"

# A test peer that cannot be set up: fatal with CI set, else the tests that
# need it skip (they look for the TOKVAULT_TEST_* variables exported below).
peer_missing() {
    if [ -n "${CI:-}" ]; then
        echo "peers: error: $1, and CI is set" >&2
        exit 1
    fi
    echo "peers: warning: $1; the tests that need it will skip" >&2
}

# An npm test peer: `npm ci` in DIR when PACKAGE is missing there or the
# lockfile changed.
npm_peer() {
    local dir=$1 package=$2
    if [ ! -f "$dir/node_modules/.package-lock.json" ] \
        || [ ! -f "$dir/node_modules/$package/package.json" ] \
        || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "peers: npm ci in $dir ($package)"
        if (cd "$dir" && npm ci --no-audit --no-fund); then
            touch "$dir/node_modules/.package-lock.json"
        else
            peer_missing "npm ci failed in $dir"
            return 1
        fi
    fi
}

# The test peers: panva's oidc-provider (Node, tests/oidc-provider),
# google-auth-library and s3rver (Node, tests/node-clients) and google-auth,
# azure-identity, moto, boto3 & co. in a virtualenv
# (tests/python/requirements.txt).
# Exports TOKVAULT_TEST_NODE and TOKVAULT_TEST_PYTHON for cargo test.
setup_oauth_peers() {
    if ! have node || ! have npm; then
        peer_missing "node and npm are needed for the oidc-provider test peer"
    elif npm_peer tests/oidc-provider oidc-provider \
        && npm_peer tests/node-clients google-auth-library \
        && npm_peer tests/node-clients s3rver; then
        export TOKVAULT_TEST_NODE="$(command -v node)"
    fi

    # Rebuilt from scratch whenever requirements.txt differs from the copy
    # kept inside the venv as its stamp.
    local venv=target/test-venv req=tests/python/requirements.txt
    if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
        echo "peers: creating $venv from $req (Python test peers)"
        rm -rf "$venv"
        if python3 -m venv "$venv" \
            && "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"; then
            cp "$req" "$venv/requirements.txt"
        else
            rm -rf "$venv"
            peer_missing "could not create the Python test venv $venv"
        fi
    fi
    if [ -x "$venv/bin/python" ]; then
        export TOKVAULT_TEST_PYTHON="$PWD/$venv/bin/python"
    fi
}
setup_oauth_peers

# The real S3 server: a single-node Ceph cluster with radosgw on loopback
# (scripts/ceph-rgw), from Debian's packages. It stays running after the
# tests (scripts/ceph-rgw stop stops it); a later run reuses it.
# Exports TOKVAULT_TEST_S3_ENDPOINT, _ACCESS_KEY and _SECRET_KEY.
# TOKVAULT_S3_PEER=0 leaves it out on purpose (scripts/bench and
# scripts/demo, which keep their vaults in files).
setup_s3_peer() {
    local tool missing=""
    if [ "${TOKVAULT_S3_PEER:-1}" = 0 ]; then
        echo "peers: the Ceph radosgw S3 peer is left out (TOKVAULT_S3_PEER=0)"
        return 0
    fi
    for tool in radosgw radosgw-admin ceph-mon ceph-osd ceph monmaptool curl; do
        have "$tool" || missing=1
    done
    if [ -n "$missing" ]; then
        echo "peers: installing Debian's radosgw, ceph-mon, ceph-osd, ceph-common (S3 test peer)"
        if ! apt_install --no-install-recommends radosgw ceph-mon ceph-osd ceph-common curl \
            || ! have radosgw || ! have ceph-mon || ! have ceph-osd || ! have curl; then
            peer_missing "could not install Ceph (radosgw, ceph-mon, ceph-osd, ceph-common)"
            return 0
        fi
    fi
    local endpoint
    if endpoint=$(scripts/ceph-rgw start); then
        export TOKVAULT_TEST_S3_ENDPOINT="$endpoint"
        export TOKVAULT_TEST_S3_ACCESS_KEY=tokvault-test
        export TOKVAULT_TEST_S3_SECRET_KEY=tokvault-test-secret
    else
        peer_missing "scripts/ceph-rgw could not start Ceph radosgw (logs: target/ceph-rgw/log)"
    fi
}
setup_s3_peer
echo "peers: TOKVAULT_TEST_NODE=${TOKVAULT_TEST_NODE:-unset} TOKVAULT_TEST_PYTHON=${TOKVAULT_TEST_PYTHON:-unset} TOKVAULT_TEST_S3_ENDPOINT=${TOKVAULT_TEST_S3_ENDPOINT:-unset}"

