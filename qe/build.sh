#!/usr/bin/env bash
# Build a serial pw.x from Debian's Quantum ESPRESSO 6.7 source with the aiida-sorep single-shot patch.
#
#   bash qe/build.sh [PREFIX]          build (if needed) and install PREFIX/bin/pw.x
#   bash qe/build.sh --source-only     only make sure the pristine Debian source is unpacked; print its path
#   bash qe/build.sh --force [PREFIX]  rebuild even if an up-to-date binary is installed
#
# PREFIX defaults to ${AIIDA_SOREP_QE_PREFIX:-$HOME/.local/aiida-sorep-qe}. The build happens outside the
# repository, in ${AIIDA_SOREP_QE_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aiida-sorep/qe-build}.
#
# The patches are qe/patches/*.patch, applied in the order of qe/patches/series. Idempotent: their checksum
# (sha256 of the series file followed by the patches, in order) is recorded in PREFIX/bin/pw.x.patch.sha256;
# when the binary is present and the checksum matches, the script says there is nothing to do and exits 0.
#
# System steps (need root, done only when missing): enable Debian's deb-src entries, `apt-get build-dep
# quantum-espresso`, install libopenblas-serial-dev. The build itself: `./configure --disable-parallel
# --disable-openmp` linked to Debian's OpenBLAS, then `make -j2 pw` (AIIDA_SOREP_QE_JOBS overrides -j).
set -euo pipefail

QE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATCH_DIR="$QE_DIR/patches"
QE_VERSION=6.7
SRC_PACKAGE=quantum-espresso
BUILD_ROOT=${AIIDA_SOREP_QE_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aiida-sorep/qe-build}
JOBS=${AIIDA_SOREP_QE_JOBS:-2}
DEB_SRC_FILE=/etc/apt/sources.list.d/aiida-sorep-deb-src.sources

MODE=build
FORCE=0
PREFIX=''
while [ $# -gt 0 ]; do
    case "$1" in
        --source-only) MODE=source ;;
        --force) FORCE=1 ;;
        -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "[FAILED] unknown option $1 (see --help)" >&2; exit 2 ;;
        *) PREFIX=$1 ;;
    esac
    shift
done
PREFIX=${PREFIX:-${AIIDA_SOREP_QE_PREFIX:-$HOME/.local/aiida-sorep-qe}}
BIN="$PREFIX/bin/pw.x"
STAMP="$BIN.patch.sha256"

log() { echo "[qe/build.sh] $*" >&2; }
die() { echo "[FAILED] $*" >&2; exit 1; }
now() { date +%s; }
T_START=$(now)
declare -a TIMINGS=()
timed() {  # timed LABEL CMD...: run CMD, record its wall time
    local label=$1 t0
    shift
    t0=$(now)
    "$@"
    TIMINGS+=("$label: $(($(now) - t0)) s")
}
is_root() { [ "$(id -u)" -eq 0 ]; }

if [ "$MODE" = build ]; then
    [ -f "$PATCH_DIR/series" ] || die "patch series not found: $PATCH_DIR/series"
    mapfile -t PATCHES < <(grep -v '^ *\(#\|$\)' "$PATCH_DIR/series")
    for p in "${PATCHES[@]}"; do [ -f "$PATCH_DIR/$p" ] || die "patch listed in series not found: $PATCH_DIR/$p"; done
    PATCH_SHA=$( (cat "$PATCH_DIR/series"; for p in "${PATCHES[@]}"; do cat "$PATCH_DIR/$p"; done) | sha256sum | cut -d' ' -f1)
fi

# ---------------------------------------------------------------------------------------------- up to date?
if [ "$MODE" = build ] && [ "$FORCE" = 0 ] && [ -x "$BIN" ] && [ -f "$STAMP" ] \
    && [ "$(cut -d' ' -f1 "$STAMP")" = "$PATCH_SHA" ]; then
    log "nothing to do: $BIN is installed and built with the current patches (sha256 $PATCH_SHA)"
    echo "$BIN"
    exit 0
fi

# ------------------------------------------------------------------------------------------ deb-src entries
# Debian's source package is called 'espresso'; its binary package 'quantum-espresso' names it for apt-get.
have_deb_src() { apt-cache showsrc "$SRC_PACKAGE" 2>/dev/null | grep -q '^Package: '; }

enable_deb_src() {
    if have_deb_src; then return 0; fi
    if ! is_root; then
        die "no deb-src entry for $SRC_PACKAGE in APT's sources. As root, either add 'deb-src' to the 'Types:' line \
of /etc/apt/sources.list.d/debian.sources (or a 'deb-src' line to /etc/apt/sources.list) and run 'apt-get update', \
or run this script once as root (it writes $DEB_SRC_FILE)."
    fi
    local sources=/etc/apt/sources.list.d/debian.sources
    if [ -f "$sources" ]; then
        log "enabling source packages: writing $DEB_SRC_FILE (a copy of the deb stanzas of $sources as deb-src)"
        sed -e 's/^Types:.*$/Types: deb-src/' "$sources" > "$DEB_SRC_FILE"
    elif [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
        log "enabling source packages: adding deb-src lines to /etc/apt/sources.list.d/aiida-sorep-deb-src.list"
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/aiida-sorep-deb-src.list
    else
        die "cannot find Debian's APT sources to derive deb-src entries from; add a deb-src entry by hand."
    fi
    log "apt-get update"
    apt-get update -qq
    have_deb_src || die "deb-src entries were added but 'apt-cache showsrc $SRC_PACKAGE' still finds nothing."
}

# --------------------------------------------------------------------------------------------- the source
# The pristine (Debian-patched) source is unpacked once into $BUILD_ROOT/src and never modified; every build
# copies it to $BUILD_ROOT/work and applies our patch there, so the patch always applies to a clean tree.
SRC_DIR="$BUILD_ROOT/src/espresso-$QE_VERSION"

fetch_source() {
    if [ -f "$SRC_DIR/PW/src/electrons.f90" ] && [ -f "$SRC_DIR/.aiida-sorep-complete" ]; then return 0; fi
    enable_deb_src
    local version
    version=$(apt-cache showsrc "$SRC_PACKAGE" | sed -n 's/^Version: //p' | head -n1)
    case "$version" in
        "$QE_VERSION"-*) ;;
        *) die "APT offers $SRC_PACKAGE source version '$version'; this patch is for $QE_VERSION." ;;
    esac
    log "apt-get source $SRC_PACKAGE ($version) into $BUILD_ROOT/src"
    rm -rf "$BUILD_ROOT/src"
    mkdir -p "$BUILD_ROOT/src"
    (cd "$BUILD_ROOT/src" && apt-get source -qq "$SRC_PACKAGE" > /dev/null) \
        || die "apt-get source $SRC_PACKAGE failed (is dpkg-dev installed? 'apt-get install dpkg-dev' as root)"
    [ -f "$SRC_DIR/PW/src/electrons.f90" ] || die "unexpected source layout: $SRC_DIR/PW/src/electrons.f90 missing"
    echo "$version" > "$SRC_DIR/.aiida-sorep-complete"
}

if [ "$MODE" = source ]; then
    timed 'apt-get source' fetch_source
    echo "$SRC_DIR"
    exit 0
fi

# ------------------------------------------------------------------------------------- build dependencies
have_build_deps() {
    command -v gfortran > /dev/null && [ -e /usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so ] \
        && { [ -e /usr/include/fftw3.f03 ] || [ -e /usr/include/fftw3.f ]; }
}

install_build_deps() {
    if have_build_deps; then return 0; fi
    is_root || die "build dependencies missing (gfortran, FFTW3 headers, Debian's serial OpenBLAS). As root run: \
apt-get build-dep -y $SRC_PACKAGE && apt-get install -y libopenblas-serial-dev   (needs deb-src entries)"
    enable_deb_src
    log "apt-get build-dep -y $SRC_PACKAGE; apt-get install -y libopenblas-serial-dev"
    DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$SRC_PACKAGE" > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-serial-dev > /dev/null
    have_build_deps || die "build dependencies still missing after apt-get build-dep"
}

timed 'build dependencies (apt-get build-dep)' install_build_deps
timed 'apt-get source' fetch_source

# ---------------------------------------------------------------------------------------- patch and build
WORK="$BUILD_ROOT/work"
LOGS="$BUILD_ROOT/logs"
mkdir -p "$LOGS"

prepare_tree() {
    rm -rf "$WORK"
    cp -a "$SRC_DIR" "$WORK"
    for p in "${PATCHES[@]}"; do
        patch -p1 --forward --quiet -d "$WORK" < "$PATCH_DIR/$p" || die "$p does not apply to $SRC_DIR"
    done
}

OPENBLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-serial
configure_tree() {
    # OpenBLAS holds both BLAS and LAPACK. Linking the serial variant's directory explicitly (with an rpath)
    # keeps pw.x on the serial OpenBLAS whatever the libblas.so.3 alternative points to. FFTW3 is left to
    # configure's own detection: it sets -D__FFTW3 only then (passing FFT_LIBS by hand skips that flag).
    (
        cd "$WORK"
        ./configure --disable-parallel --disable-openmp \
            BLAS_LIBS="-L$OPENBLAS_DIR -Wl,-rpath,$OPENBLAS_DIR -lopenblas" \
            LAPACK_LIBS="-L$OPENBLAS_DIR -Wl,-rpath,$OPENBLAS_DIR -lopenblas" > "$LOGS/configure.log" 2>&1
    ) || { tail -n 30 "$LOGS/configure.log" >&2; die "configure failed, see $LOGS/configure.log"; }
    grep -q '^DFLAGS *=.*-D__FFTW3' "$WORK/make.inc" \
        || die "configure did not find FFTW3 (libfftw3-dev); see $LOGS/configure.log"
}

make_pw() {
    (cd "$WORK" && make -j"$JOBS" pw > "$LOGS/make.log" 2>&1) \
        || { tail -n 30 "$LOGS/make.log" >&2; die "make pw failed, see $LOGS/make.log"; }
    [ -x "$WORK/PW/src/pw.x" ] || die "make pw finished but $WORK/PW/src/pw.x is missing"
}

log "patching a copy of $SRC_DIR with ${PATCHES[*]} (sha256 $PATCH_SHA)"
timed 'copy + patch' prepare_tree
log "configure --disable-parallel --disable-openmp (OpenBLAS serial), log: $LOGS/configure.log"
timed 'configure' configure_tree
log "make -j$JOBS pw, log: $LOGS/make.log"
timed "make -j$JOBS pw" make_pw

mkdir -p "$PREFIX/bin"
install -m 0755 "$WORK/PW/src/pw.x" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
echo "$PATCH_SHA  series: ${PATCHES[*]}" > "$STAMP"
{
    echo "source: $SRC_PACKAGE $(cat "$SRC_DIR/.aiida-sorep-complete") (apt-get source)"
    echo "patches: ${PATCHES[*]} (sha256 of series + patches: $PATCH_SHA)"
    echo "configure: --disable-parallel --disable-openmp, BLAS/LAPACK: $OPENBLAS_DIR/libopenblas.so, FFT: -lfftw3"
    echo "make: make -j$JOBS pw"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
} > "$PREFIX/bin/pw.x.build-info"

log "installed $BIN"
for t in "${TIMINGS[@]}"; do log "  $t"; done
log "  total: $(($(now) - T_START)) s"
echo "$BIN"
