#!/usr/bin/env bash
# The Debian package end to end: cpack builds it from this build tree, dpkg installs it into /usr,
# the installed programs and Python module run on their own (private libllama, no build folder,
# no LD_LIBRARY_PATH), a reinstall and an upgrade work, and removing and purging it leaves none
# of its files behind. Installs for real, so it needs root: skipped (exit 77) otherwise.
#
#   tests/test_deb.sh BUILD_DIR MODEL.gguf
set -euo pipefail
build_dir="$(cd "$1" && pwd)"
model="$(realpath "$2")"

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: installing a .deb needs root"
    exit 77
fi
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps readelf ldd; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (apt-get install dpkg-dev binutils cmake)"; exit 1; }
done
# Never replace or remove a cortex package this test did not install.
if [ "$(dpkg-query -W -f='${db:Status-Status}' cortex 2>/dev/null || true)" = installed ]; then
    echo "FAIL: a cortex package is already installed; this test would remove it (dpkg --purge cortex first)"
    exit 1
fi

# apt-get rather than dpkg: it waits for the package database's lock instead of failing when
# something else holds it. The dependencies are installed already (scripts/setup.sh), so it
# downloads nothing.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 "$@"; }

tmp="$(mktemp -d)"
we_installed=0
cleanup() {
    if [ "$we_installed" = 1 ] && dpkg-query -W cortex >/dev/null 2>&1; then
        apt_get purge cortex >/dev/null 2>&1 || echo "warning: could not purge cortex" >&2
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

# Commands run as a user would: a fresh home, nothing from the build environment.
run_clean() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$tmp/home" CORTEX_HOME="$tmp/home/.cortex" LANG=C.UTF-8 "$@"
}
mkdir -p "$tmp/home"

# --- build ---------------------------------------------------------------------------------------
build_deb() {  # OUT_DIR [cpack -D arguments]
    local out="$1"; shift
    if ! cpack --config "$build_dir/CPackConfig.cmake" -B "$out" "$@" >"$out.log" 2>&1; then
        cat "$out.log"; echo "FAIL: cpack"; exit 1
    fi
    local debs=("$out"/cortex_*.deb)
    [ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || { ls -l "$out"; echo "FAIL: expected one cortex_*.deb in $out"; exit 1; }
    echo "${debs[0]}"
}
deb="$(build_deb "$tmp/pkg")"
pass "cpack built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# --- what the package holds ----------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = cortex ] || fail "Package is '$(field Package)'"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture is '$(field Architecture)'"
[ -n "$(field Maintainer)" ] && [ -n "$(field Description)" ] && [ -n "$(field Section)" ] ||
    fail "Maintainer, Description or Section missing"
depends="$(field Depends)"
depends_on() { tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//' | grep -qxF "$1"; }
for dep in libc6 libstdc++6 libcurl4 libssl3 libsqlite3-0 libcpp-httplib0.11; do
    depends_on "$dep" || fail "Depends lacks $dep: $depends"
done

fails_before=$fails
dpkg-deb -c "$deb" >"$tmp/contents"
awk '{print $6}' "$tmp/contents" | sed 's|^\./|/|; s|/$||' | grep -v '^$' >"$tmp/paths"
awk '$2 != "root/root" {print}' "$tmp/contents" >"$tmp/not-root"
[ -s "$tmp/not-root" ] && fail "entries not owned by root: $(head -n 3 "$tmp/not-root")"
grep -Ev '^/usr(/|$)' "$tmp/paths" >"$tmp/outside" && fail "entries outside /usr: $(head -n 3 "$tmp/outside")"
grep -E '^/usr/local|/build/|cortex-make-test-model|cortex-chat-example' "$tmp/paths" >"$tmp/unwanted" &&
    fail "unwanted entries: $(head -n 3 "$tmp/unwanted")"
for want in /usr/bin/cortex /usr/bin/cortex-model /usr/bin/cortex-preload /usr/include/cortex/llm.h \
    /usr/share/cortex/catalog.json /usr/lib/systemd/user/cortex-preload.service \
    /usr/lib/systemd/user/cortex-preload.socket /usr/share/doc/cortex/copyright; do
    grep -qx "$want" "$tmp/paths" || fail "missing $want"
done
for pattern in '/libcortex\.so\.[0-9]+$' '/pkgconfig/cortex\.pc$' '/cortex/libllama\.so\.[0-9]+$' \
    '/cortex/libggml-base\.so\.[0-9]+$' '^/usr/lib/python3/dist-packages/cortex/llm/_native\..*so$'; do
    grep -Eq "$pattern" "$tmp/paths" || fail "no entry matches $pattern"
done

# Run paths: $ORIGIN-relative only, never the build folder or the llama.cpp prefix.
dpkg-deb -x "$deb" "$tmp/root"
elf_count=0
while IFS= read -r -d '' file; do
    head -c 4 "$file" | grep -q $'^\x7fELF' || continue
    elf_count=$((elf_count + 1))
    runpath="$(readelf -d "$file" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')"
    IFS=: read -ra entries <<<"$runpath"
    for entry in "${entries[@]}"; do
        case "$entry" in '$ORIGIN'|'$ORIGIN/'*) ;; *) fail "${file#"$tmp/root"} has run path '$entry'" ;; esac
    done
    readelf -S "$file" | grep -q '\.symtab' && fail "${file#"$tmp/root"} is not stripped"
done < <(find "$tmp/root" -type f -print0)
[ "$elf_count" -ge 8 ] || fail "only $elf_count ELF files in the package"
grep -qx 'ExecStart=/usr/bin/cortex-preload run' "$tmp/root/usr/lib/systemd/user/cortex-preload.service" ||
    fail "the service does not start /usr/bin/cortex-preload: $(grep ExecStart "$tmp/root/usr/lib/systemd/user/cortex-preload.service")"
[ "$fails" = "$fails_before" ] && pass "contents: $(wc -l <"$tmp/paths") entries, $elf_count ELF files, Depends: $depends"

# Which of the package's directories exist already: those must stay, the rest must go on purge.
while IFS= read -r path; do
    [ -d "$path" ] && echo "$path"
done <"$tmp/paths" >"$tmp/dirs-before"

# --- install -------------------------------------------------------------------------------------
we_installed=1
apt_get install "$deb" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "apt-get install $deb"; exit 1; }
[ "$(dpkg-query -W -f='${db:Status-Status}' cortex)" = installed ] || fail "not installed after apt-get install"
dpkg -L cortex | sort >"$tmp/listed"

check_installed() {  # LABEL
    local label="$1" out outside fails_before=$fails
    out="$(run_clean /usr/bin/cortex --version 2>&1)" && grep -Eq '^cortex [0-9]' <<<"$out" ||
        fail "$label: cortex --version: $out"
    out="$(run_clean /usr/bin/cortex-model list 2>&1)" && grep -q 'qwen2.5' <<<"$out" ||
        fail "$label: cortex-model list: $out"
    out="$(run_clean /usr/bin/cortex-preload --help 2>&1)" && grep -qi 'usage' <<<"$out" ||
        fail "$label: cortex-preload --help: $out"
    # Planned from the package index alone; apt only simulates (--dry-run is the default).
    out="$(run_clean /usr/bin/cortex install nginx --dry-run --no-model 2>&1)" && grep -q 'nginx' <<<"$out" ||
        fail "$label: cortex install nginx --dry-run: $out"
    # The installed Python module, from a neutral directory: real inference through the private
    # libllama proves the whole chain loads.
    out="$(cd "$tmp" && run_clean /usr/bin/python3 -c '
import sys, cortex.llm as llm
m = llm.Model.load(sys.argv[1], llm.ModelConfig(n_ctx=256))
r = m.complete("Hello", llm.GenerationConfig(max_tokens=4, seed=1))
print(llm.__file__, r.completion_tokens)' "$model" 2>&1)" &&
        grep -Eq '^/usr/lib/python3/dist-packages/cortex/llm/__init__\.py [1-4]$' <<<"$out" ||
        fail "$label: python3 import cortex.llm and generate: $out"
    # Every library of every installed ELF file resolves, llama/ggml from the package's own copy.
    local file
    while IFS= read -r file; do
        is_elf "$file" || continue
        out="$(env -i ldd "$file" 2>&1)" || { fail "$label: ldd $file: $out"; continue; }
        grep -q 'not found' <<<"$out" && fail "$label: $file: $(grep 'not found' <<<"$out")"
        outside="$(direct_libs "$file" | grep -E '/lib(llama|ggml)' | grep -Ev '^/usr/lib/([a-z0-9_-]+/)?cortex/' || true)"
        [ -z "$outside" ] || fail "$label: $file loads llama/ggml from outside the package:" $outside
    done <"$tmp/listed"
    [ "$fails" = "$fails_before" ] && pass "$label: installed programs, Python module and libraries work"
    return 0
}
is_elf() { [ -f "$1" ] && [ ! -L "$1" ] && head -c 4 "$1" | grep -q $'^\x7fELF'; }
# The files an ELF file's own NEEDED entries resolve to (ldd lists the whole closure), with
# $ORIGIN/../ folded away.
direct_libs() {
    local file="$1" resolved soname
    resolved="$(env -i ldd "$file" 2>/dev/null)" || return 0
    readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while IFS= read -r soname; do
        path="$(awk -v n="$soname" '$1 == n && $2 == "=>" {print $3}' <<<"$resolved")"
        if [ -n "$path" ]; then realpath -s "$path"; fi
    done
}
check_installed "install"

# Every library an installed ELF file needs directly is the package's own or one of its Depends
# (so dpkg-shlibdeps missed nothing).
deps_missing=""
while IFS= read -r lib; do
    grep -qx "$lib" "$tmp/listed" && continue
    owner="$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)"
    owner="${owner%%:*}"
    [ -n "$owner" ] || { deps_missing+=" $lib(no owner)"; continue; }
    depends_on "$owner" || deps_missing+=" $lib($owner)"
done < <(while IFS= read -r file; do
    is_elf "$file" && direct_libs "$file"
done <"$tmp/listed" | sort -u)
[ -z "$deps_missing" ] && pass "every needed library is in the package or in Depends" ||
    fail "needed libraries outside Depends:$deps_missing"

# --- reinstall and upgrade -----------------------------------------------------------------------
apt_get install --reinstall "$deb" >"$tmp/reinstall.log" 2>&1 || { cat "$tmp/reinstall.log"; fail "reinstall"; }
check_installed "reinstall"
version="$(field Version)"
deb2="$(build_deb "$tmp/pkg2" -D "CPACK_PACKAGE_VERSION=$version+test1")"
apt_get install "$deb2" >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log"; fail "upgrade"; }
[ "$(dpkg-query -W -f='${Version}' cortex)" = "$version+test1" ] ||
    fail "after the upgrade the version is $(dpkg-query -W -f='${Version}' cortex)"
dpkg -L cortex | sort >"$tmp/listed"
check_installed "upgrade to $version+test1"

# --- footprint -----------------------------------------------------------------------------------
installed_kb="$(dpkg-query -W -f='${Installed-Size}' cortex)"
echo "footprint: Installed-Size ${installed_kb} KiB, .deb $(stat -c %s "$deb") bytes"
# The CPU build's budget (docs/PERFORMANCE.md, Footprint); a GPU backend brings its own weight.
if ! grep -Eq '/libggml-(cuda|hip|vulkan|metal)' "$tmp/listed" && [ "$installed_kb" -ge 51200 ]; then
    fail "a CPU install of ${installed_kb} KiB is over the 50 MiB budget"
fi

# --- remove and purge ----------------------------------------------------------------------------
apt_get remove cortex >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log"; fail "apt-get remove"; }
left=""
while IFS= read -r path; do
    if [ -L "$path" ] || [ -f "$path" ]; then left+=" $path"; fi
done <"$tmp/listed"
[ -z "$left" ] || fail "files left after apt-get remove:$left"
apt_get purge cortex >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "apt-get purge"; }
status="$(dpkg-query -W -f='${db:Status-Status}' cortex 2>/dev/null || echo not-known)"
case "$status" in not-installed|not-known) ;; *) fail "after purge dpkg says '$status'" ;; esac
we_installed=0
while IFS= read -r path; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    grep -qx "$path" "$tmp/dirs-before" || left+=" $path"
done <"$tmp/listed"
compgen -G "/var/lib/dpkg/info/cortex.*" >/dev/null && left+=" $(echo /var/lib/dpkg/info/cortex.*)"
[ -z "$left" ] && pass "removed and purged: nothing of the package is left" || fail "left after purge:$left"

# Removing what is not installed is apt's clear message ("not installed", or once purged "Unable
# to locate package"), and changes nothing.
out="$(apt_get remove cortex 2>&1)" || true
grep -Eq "Package 'cortex' is not installed|Unable to locate package cortex" <<<"$out" ||
    fail "apt-get remove of a removed cortex said: $out"
dpkg-query -W -f='${db:Status-Status}' cortex 2>/dev/null | grep -q '^installed' && fail "cortex is installed again"

if [ "$fails" -gt 0 ]; then
    echo "deb test: $fails failed"
    exit 1
fi
echo "deb test: all passed"
