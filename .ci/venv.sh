# Sourced by .ci/interop.sh and .ci/image.sh: one cached Python venv per pinned
# interop/requirements-NAME.txt. The caller sets ROOT (the repository),
# PYTHON, PYVER (its version, part of the cache key) and CACHE (where venvs live).

# venv_dir NAME: the venv for interop/requirements-NAME.txt, keyed by a hash of
# that file and of the Python version.
venv_dir() {
    local req="$ROOT/interop/requirements-$1.txt"
    local hash
    hash=$( (cat "$req"; echo "python $PYVER") | sha256sum | cut -c1-16)
    echo "$CACHE/venv-$1-$hash"
}

# make_venv NAME: creates venv_dir NAME unless a complete one is there.
make_venv() {
    local name=$1
    local req="$ROOT/interop/requirements-$name.txt"
    local dir
    dir=$(venv_dir "$name")
    if [ -f "$dir/.complete" ]; then
        echo "venv $name: reusing $dir"
        return 0
    fi
    # Older venvs of this name were for other requirements: drop them.
    find "$CACHE" -maxdepth 1 -name "venv-$name-*" -type d ! -path "$dir" -exec rm -rf {} +
    rm -rf "$dir"
    local t=$SECONDS
    "$PYTHON" -m venv "$dir"
    # The requirements files pin the whole dependency tree: install exactly
    # that, then let pip check that nothing is missing or in conflict.
    # pip and setuptools first when the file pins them (pip freeze leaves
    # them out unless told; some packages need newer ones than venv brings).
    local bootstrap
    bootstrap=$(grep -E -i '^(pip|setuptools|wheel)==' "$req" || true)
    if [ -n "$bootstrap" ]; then
        # shellcheck disable=SC2086
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps $bootstrap
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
    "$dir/bin/python" -m pip check
    touch "$dir/.complete"
    echo "venv $name: created $dir in $((SECONDS - t))s"
}
