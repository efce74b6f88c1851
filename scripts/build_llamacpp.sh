#!/usr/bin/env bash
# Builds the pinned llama.cpp (libllama, ggml, libllama-common and the benchmark tools) as shared
# libraries into a per-backend prefix that CMake's find_package(llama) can use.
#
# Idempotent: the inputs (source, backend, options, compiler) are hashed into a stamp in the
# prefix; a second run with the same inputs returns in well under a second.
set -euo pipefail

readonly LLAMA_TAG="v0.5.0"
readonly LLAMA_GIT_URL="${LLAMA_CPP_GIT_URL:-https://github.com/ggml-org/llama.cpp}"
readonly DEFAULT_CUDA_ARCHS="75;80;86;89;90"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_root="${CORTEX_LLAMA_BUILD_DIR:-$repo_root/build/llama.cpp}"
shared_tarball="$repo_root/../shared/third_party/llama.cpp-$LLAMA_TAG.tar.xz"

usage() {
    cat <<USAGE
usage: scripts/build_llamacpp.sh [auto|cuda|rocm|metal|cpu] [options]

Builds llama.cpp $LLAMA_TAG for one backend and installs it into
  \$CORTEX_LLAMA_BUILD_DIR/<backend>/install   (default: build/llama.cpp/<backend>/install)

Backends:
  auto   CUDA if nvcc and an NVIDIA GPU are found, ROCm if hipcc or rocminfo is, Metal on Apple Silicon, else CPU
  cuda   NVIDIA GPUs; CUDA_ARCHITECTURES (default "$DEFAULT_CUDA_ARCHS") picks the SM versions
  rocm   AMD GPUs; AMDGPU_TARGETS (e.g. gfx1100) picks the GPU targets
  metal  Apple Silicon
  cpu    native SIMD (AVX/AVX2/AVX-512/NEON); OpenBLAS when it is installed

Options:
  --print-prefix   print the install prefix of the backend and exit (builds nothing)
  --jobs N         parallel build jobs (default: all cores)
  -h, --help       this text

Environment:
  LLAMA_CPP_SOURCE        llama.cpp source: a folder or a .tar.xz (tried first)
  CORTEX_LLAMA_BUILD_DIR  where sources, builds and prefixes go (default: build/llama.cpp)
  CUDA_ARCHITECTURES      CUDA SM list, e.g. 90 to build only for Hopper
  LLAMA_CMAKE_ARGS        extra arguments for llama.cpp's CMake configure step
  LLAMA_BUILD_SERVER=1    also build and install llama-server (for cortex-bench-http)
  LLAMA_RPC=0             leave out the RPC backend and ggml-rpc-server (built by default)
USAGE
}

die() {
    echo "error: $1" >&2
    [ $# -ge 2 ] && echo "hint: $2" >&2
    exit 1
}

log() { echo "build_llamacpp: $*" >&2; }

backend="auto"
print_prefix=0
jobs="$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)"
while [ $# -gt 0 ]; do
    case "$1" in
        auto|cuda|rocm|metal|cpu) backend="$1" ;;
        --print-prefix) print_prefix=1 ;;
        --jobs) [ $# -ge 2 ] || die "--jobs needs a number" "e.g. --jobs 4"; jobs="$2"; shift ;;
        --jobs=*) jobs="${1#--jobs=}" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1'" "run scripts/build_llamacpp.sh --help" ;;
    esac
    shift
done
case "$jobs" in ''|*[!0-9]*|0) die "--jobs needs a positive number, got '$jobs'" ;; esac

find_nvcc() {
    if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return 0; fi
    for candidate in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

find_hipcc() {
    for candidate in "$(command -v hipcc 2>/dev/null || true)" "${ROCM_PATH:-/opt/rocm}/bin/hipcc"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

is_apple_silicon() { [ "$(uname -s)" = "Darwin" ] && [ "$(uname -m)" = "arm64" ]; }

# A toolkit without a driver (a build box, a container image) cannot run what it builds.
nvidia_gpu_present() {
    [ -e /proc/driver/nvidia/version ] || { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
}

if [ "$backend" = "auto" ]; then
    if find_nvcc >/dev/null && nvidia_gpu_present; then backend=cuda
    elif find_hipcc >/dev/null || command -v rocminfo >/dev/null 2>&1; then backend=rocm
    elif is_apple_silicon; then backend=metal
    else
        backend=cpu
        find_nvcc >/dev/null && log "nvcc found but no NVIDIA GPU/driver: building for CPU (pass 'cuda' to force)"
    fi
fi

prefix="$build_root/$backend/install"
if [ "$print_prefix" = 1 ]; then
    echo "$prefix"
    exit 0
fi

# Every missing tool is reported before any work starts, never after a long build.
command -v cmake >/dev/null 2>&1 || die "cmake not found" "apt-get install cmake"
command -v ninja >/dev/null 2>&1 || die "ninja not found" "apt-get install ninja-build"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 ||
    die "no C++ compiler found" "apt-get install g++"

cmake_args=(
    -G Ninja
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON
    -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_TOOLS_INSTALL=ON
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_SUBPROCESS=OFF
    -DGGML_CCACHE=ON
    -DCMAKE_INSTALL_LIBDIR=lib
    "-DCMAKE_INSTALL_RPATH=\$ORIGIN/../lib"
)
# The RPC backend (issue #9): libggml-rpc, through which libllama offloads layers to
# `ggml-rpc-server` processes on other hosts, and that server itself, installed into the prefix.
# On by default; LLAMA_RPC=0 leaves both out. Explicit either way, so that a cached ON from an
# earlier configure does not survive.
if [ "${LLAMA_RPC:-1}" = 0 ]; then cmake_args+=(-DGGML_RPC=OFF); else cmake_args+=(-DGGML_RPC=ON); fi

case "$backend" in
    cuda)
        nvcc="$(find_nvcc)" || die "backend 'cuda' needs the CUDA toolkit, but nvcc was not found (looked in PATH, \$CUDA_HOME/bin and /usr/local/cuda/bin)" \
            "install the CUDA toolkit (Debian: apt-get install nvidia-cuda-toolkit; or NVIDIA's packages) and put nvcc on PATH, or build with 'cpu'"
        archs="${CUDA_ARCHITECTURES:-$DEFAULT_CUDA_ARCHS}"
        cmake_args+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc" "-DCMAKE_CUDA_ARCHITECTURES=$archs")
        # The GPU backend as a module that libllama loads on first use: a process that only
        # talks to the preload daemon then never maps CUDA's libraries (cuBLAS alone is hundreds
        # of MB of relocations), which is most of a one-shot command's start-up.
        # A module build cannot be GGML_NATIVE; the CPU side is every x86 variant, the best one
        # picked at run time (as llama.cpp's release builds do).
        cmake_args+=(-DGGML_BACKEND_DL=ON "-DGGML_BACKEND_DIR=$prefix/lib" -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=ON)
        log "CUDA: $("$nvcc" --version | tail -n 2 | head -n 1), architectures $archs"
        ;;
    rocm)
        hipcc="$(find_hipcc)" || die "backend 'rocm' needs ROCm, but hipcc was not found (looked in PATH and \${ROCM_PATH:-/opt/rocm}/bin)" \
            "install ROCm (https://rocm.docs.amd.com) or build with 'cpu'"
        cmake_args+=(-DGGML_HIP=ON "-DCMAKE_HIP_COMPILER=$(dirname "$hipcc")/../llvm/bin/clang++")
        cmake_args+=(-DGGML_BACKEND_DL=ON "-DGGML_BACKEND_DIR=$prefix/lib" -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=ON)  # as for CUDA
        [ -n "${AMDGPU_TARGETS:-}" ] && cmake_args+=("-DAMDGPU_TARGETS=$AMDGPU_TARGETS" "-DGPU_TARGETS=$AMDGPU_TARGETS")
        ;;
    metal)
        is_apple_silicon || die "backend 'metal' needs macOS on Apple Silicon; this is $(uname -s) $(uname -m)" \
            "use 'auto' to pick the backend this machine supports"
        command -v xcrun >/dev/null 2>&1 || die "backend 'metal' needs the Xcode command line tools (xcrun not found)" \
            "xcode-select --install"
        cmake_args+=(-DGGML_METAL=ON -DGGML_METAL_EMBED_LIBRARY=ON)
        ;;
    cpu)
        cmake_args+=(-DGGML_NATIVE=ON)
        if [ -f /proc/cpuinfo ]; then
            simd="$(grep -m1 -o -w -E 'avx512f|avx2|avx|asimd' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)"
            log "CPU SIMD seen: ${simd:-none}"
        fi
        if pkg-config --exists openblas 2>/dev/null; then
            log "OpenBLAS found: prompt processing uses it"
            cmake_args+=(-DGGML_BLAS=ON -DGGML_BLAS_VENDOR=OpenBLAS)
        else
            # Explicit, so that a cached ON from an earlier configure does not survive.
            cmake_args+=(-DGGML_BLAS=OFF)
        fi
        ;;
esac

# llama-server is opt-in (LLAMA_BUILD_SERVER=1): only the HTTP benchmark compares against it, and
# it costs CI minutes. Its web UI is left out, so the build never reaches for npm or the network.
if [ "${LLAMA_BUILD_SERVER:-0}" = 1 ]; then
    cmake_args+=(-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF)
else
    cmake_args+=(-DLLAMA_BUILD_SERVER=OFF)
fi

# LLAMA_CMAKE_ARGS is split on whitespace on purpose: it is a list of -D flags.
# shellcheck disable=SC2206
[ -n "${LLAMA_CMAKE_ARGS:-}" ] && cmake_args+=(${LLAMA_CMAKE_ARGS})

# Source: $LLAMA_CPP_SOURCE, then the tarball beside the repo, then a clone of the pinned tag.
tried=()
source_dir=""
source_id=""
src_root="$build_root/src"

unpack_tarball() {
    local tarball="$1" sum
    sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
    if [ ! -f "$src_root/$sum/.unpacked" ]; then
        log "unpacking $tarball"
        rm -rf "$src_root/$sum.tmp"
        mkdir -p "$src_root/$sum.tmp"
        tar -xJf "$tarball" -C "$src_root/$sum.tmp" || die "could not unpack $tarball" "check that it is a complete .tar.xz"
        [ -f "$src_root/$sum.tmp/llama.cpp/CMakeLists.txt" ] || die "$tarball does not hold a llama.cpp/ folder" \
            "use the release tarball described in ../shared/third_party/SOURCE.md"
        rm -rf "$src_root/$sum"
        mv "$src_root/$sum.tmp" "$src_root/$sum"
        touch "$src_root/$sum/.unpacked"
    fi
    source_dir="$src_root/$sum/llama.cpp"
    source_id="tarball:$sum"
}

if [ -n "${LLAMA_CPP_SOURCE:-}" ]; then
    tried+=("LLAMA_CPP_SOURCE=$LLAMA_CPP_SOURCE")
    if [ -d "$LLAMA_CPP_SOURCE" ] && [ -f "$LLAMA_CPP_SOURCE/CMakeLists.txt" ]; then
        source_dir="$(cd "$LLAMA_CPP_SOURCE" && pwd)"
        # A folder may change under us, so it never short-circuits the build: ninja decides.
        source_id="folder:$source_dir:$(date +%s%N)"
    elif [ -f "$LLAMA_CPP_SOURCE" ]; then
        mkdir -p "$src_root"
        unpack_tarball "$LLAMA_CPP_SOURCE"
    else
        die "LLAMA_CPP_SOURCE=$LLAMA_CPP_SOURCE is neither a llama.cpp folder nor a .tar.xz" \
            "point it at a llama.cpp checkout or at llama.cpp-$LLAMA_TAG.tar.xz, or unset it"
    fi
fi
if [ -z "$source_dir" ]; then
    tried+=("$shared_tarball")
    if [ -f "$shared_tarball" ]; then
        mkdir -p "$src_root"
        unpack_tarball "$shared_tarball"
    fi
fi
if [ -z "$source_dir" ]; then
    tried+=("git clone --depth 1 --branch $LLAMA_TAG $LLAMA_GIT_URL")
    clone_dir="$src_root/git-$LLAMA_TAG"
    if [ ! -f "$clone_dir/CMakeLists.txt" ]; then
        mkdir -p "$src_root"
        rm -rf "$clone_dir"
        if command -v git >/dev/null 2>&1 &&
            git clone -q --depth 1 --branch "$LLAMA_TAG" "$LLAMA_GIT_URL" "$clone_dir" 2>/dev/null; then
            :
        else
            rm -rf "$clone_dir"
            {
                echo "error: no llama.cpp source found; tried, in order:"
                for place in "${tried[@]}"; do echo "  - $place"; done
            } >&2
            die_hint="set LLAMA_CPP_SOURCE to a llama.cpp $LLAMA_TAG folder or tarball, or put the tarball at $shared_tarball"
            echo "hint: $die_hint" >&2
            exit 1
        fi
    fi
    source_dir="$clone_dir"
    source_id="git:$LLAMA_TAG"
fi

compiler_id="$( (c++ --version 2>/dev/null || g++ --version) | head -n 1)"
stamp_text="$(printf '%s\n' "$source_id" "$backend" "$compiler_id" "${cmake_args[@]}" "build-script:$(sha256sum "$0" | cut -d' ' -f1)")"
stamp_file="$prefix/.cortex-build-stamp"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_text" ] &&
    [ -f "$prefix/lib/cmake/llama/llama-config.cmake" ]; then
    log "llama.cpp $LLAMA_TAG ($backend) is up to date in $prefix"
    echo "$prefix"
    exit 0
fi

build_dir="$build_root/$backend/build"
log "building llama.cpp $LLAMA_TAG ($backend) from $source_dir with $jobs jobs"
command -v ccache >/dev/null 2>&1 && log "ccache: $(command -v ccache)"
cmake -S "$source_dir" -B "$build_dir" "${cmake_args[@]}" "-DCMAKE_INSTALL_PREFIX=$prefix" >"$build_root/$backend-configure.log" 2>&1 ||
    { tail -n 40 "$build_root/$backend-configure.log" >&2; die "llama.cpp configure failed (log: $build_root/$backend-configure.log)"; }
cmake --build "$build_dir" -j "$jobs" >&2 || die "llama.cpp build failed" "see the compiler output above"
rm -f "$stamp_file"
cmake --install "$build_dir" >/dev/null || die "llama.cpp install into $prefix failed"

# Upstream installs libllama-common but not its headers; Cortex uses its Jinja chat templates
# and JSON-schema-to-grammar, so the headers go into include/llama-common/.
common_inc="$prefix/include/llama-common"
rm -rf "$common_inc"
mkdir -p "$common_inc"
(cd "$source_dir/common" && find . -name '*.h' -o -name '*.hpp' | while read -r header; do
    mkdir -p "$common_inc/$(dirname "$header")"
    cp "$header" "$common_inc/$header"
done)

# The vocab files (real tokenizers and chat templates, no weights) feed the test-model generator.
mkdir -p "$prefix/share/llama.cpp/models"
cp "$source_dir"/models/ggml-vocab-*.gguf "$prefix/share/llama.cpp/models/" 2>/dev/null || true
if [ -d "$source_dir/models/templates" ]; then
    mkdir -p "$prefix/share/llama.cpp/templates"
    cp "$source_dir"/models/templates/*.jinja "$prefix/share/llama.cpp/templates/"
fi

printf '%s\n' "$stamp_text" >"$stamp_file"
log "installed into $prefix"
echo "$prefix"
