# Shared helpers of the bench scripts; sourced after each defines log() and die().

APT_UPDATED=0
# ensure COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
ensure() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "$1 not found; installing package $2"
  command -v apt-get >/dev/null || die "$1 missing and no apt-get to install $2"
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >&2 || true; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2 || die "could not install $2"
  command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}

# scratch_parent: prints (and creates) the absolute folder scratch dirs go in:
# $BENCH_TMPDIR, else /work/tmp-bench when /work is writable, else $TMPDIR or /tmp.
scratch_parent() {
  local parent
  if [ -n "${BENCH_TMPDIR:-}" ]; then parent=$BENCH_TMPDIR
  elif [ -d /work ] && [ -w /work ]; then parent=/work/tmp-bench
  else parent=${TMPDIR:-/tmp}; fi
  mkdir -p "$parent"
  realpath "$parent"
}
