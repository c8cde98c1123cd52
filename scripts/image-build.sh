#!/usr/bin/env bash
# Builds the raftkv image without a Docker engine: reads ./Dockerfile and performs its steps into a
# scratch directory, so that the image's contents can be started and tested where no engine runs.
#
#   scripts/image-build.sh OUT_DIR
#
# Each stage's filesystem is OUT_DIR/<stage>/ (WORKDIR /app of stage "runtime" is OUT_DIR/runtime/app).
# COPY copies from the repository (the build context) or, with --from, from an earlier stage's
# directory; RUN steps that start with `npm` run in the stage's WORKDIR with the stage's ENV, on this
# machine's Node.js and npm cache; other RUN steps set up the base image's system (directories, owners)
# and mean nothing in a scratch directory: they are printed as skipped. ENV, USER, WORKDIR, EXPOSE,
# VOLUME and ENTRYPOINT of the last stage go to OUT_DIR/image.json, which the test uses to start the
# result as the image would run. Any other instruction stops the script, so the Dockerfile cannot
# grow a step that this build silently leaves out.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dockerfile="$repo/Dockerfile"

die() { echo "image-build: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/image-build.sh OUT_DIR"
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
[ -z "$(ls -A "$out")" ] || die "$out is not empty"

stage=""
workdir="/"
user=""
entrypoint=""
expose=""
volumes=""
declare -A stage_env=()
declare -A stages=()

# The Dockerfile's instructions, one per line: comments and blank lines dropped, continuations joined.
instructions() {
  sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta'
}

# A path of the current stage's filesystem: absolute paths under the stage root, others under WORKDIR.
stage_path() {
  case "$1" in
    /*) printf '%s/%s%s' "$out" "$stage" "$1" ;;
    *) printf '%s/%s%s/%s' "$out" "$stage" "$workdir" "$1" ;;
  esac
}

do_copy() {
  local from="" args=()
  for word in "$@"; do
    case "$word" in
      --from=*) from="${word#--from=}" ;;
      # Ownership is the image's business; here every file belongs to whoever runs the build.
      --chown=* | --chmod=*) ;;
      --*) die "COPY option $word is not supported" ;;
      *) args+=("$word") ;;
    esac
  done
  [ "${#args[@]}" -ge 2 ] || die "COPY needs a source and a destination: COPY $*"
  local dest="${args[-1]}"
  unset 'args[-1]'
  local target
  target="$(stage_path "$dest")"
  for source in "${args[@]}"; do
    local path
    if [ -n "$from" ]; then
      [ -n "${stages[$from]:-}" ] || die "COPY --from=$from: no such stage before $stage"
      path="$out/$from$source"
    else
      case "$source" in /* | *..*) die "COPY source $source is outside the build context" ;; esac
      path="$repo/$source"
    fi
    [ -e "$path" ] || die "COPY source $source does not exist ($path)"
    if [ -d "$path" ]; then
      # Docker copies a directory's contents, not the directory itself.
      mkdir -p "$target"
      cp -R "$path/." "$target/"
    elif [[ "$dest" == */ ]] || [ "${#args[@]}" -gt 1 ]; then
      mkdir -p "$target"
      cp "$path" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp "$path" "$target"
    fi
  done
  echo "image-build: [$stage] COPY ${from:+--from=$from }${args[*]} -> $dest"
}

do_run() {
  local command="$*"
  # A BuildKit cache mount only keeps npm's cache out of the layer; here npm uses this machine's cache.
  while [[ "$command" == --mount=* ]]; do command="${command#* }"; done
  case "$command" in
    npm\ *)
      echo "image-build: [$stage] RUN $command"
      local dir
      dir="$(stage_path "$workdir")"
      mkdir -p "$dir"
      (
        cd "$dir"
        for name in "${!stage_env[@]}"; do export "$name=${stage_env[$name]}"; done
        bash -c "$command"
      )
      ;;
    *) echo "image-build: [$stage] skipped, base-image setup with no meaning in a scratch directory: RUN $command" ;;
  esac
}

do_env() {
  local rest="$*"
  # Only the KEY=VALUE form with values free of spaces and quotes, which is all this Dockerfile uses.
  for pair in $rest; do
    [[ "$pair" == *=* ]] || die "ENV $rest: only the KEY=VALUE form is supported"
    stage_env["${pair%%=*}"]="${pair#*=}"
  done
}

while IFS= read -r line; do
  read -r keyword rest <<<"$line"
  case "${keyword^^}" in
    FROM)
      read -r image as name extra <<<"$rest"
      [ "${as^^}" = "AS" ] && [ -n "$name" ] && [ -z "${extra:-}" ] || die "FROM must name its stage: FROM $rest"
      # The scratch build runs on this machine's Node.js: it must be the major version the image uses.
      if [[ "$image" =~ ^node:([0-9]+) ]]; then
        major="${BASH_REMATCH[1]}"
        [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ] || die "the image is based on $image but this machine runs Node.js $(node --version)"
      fi
      stage="$name"
      stages[$stage]=1
      workdir="/"
      user=""
      stage_env=()
      mkdir -p "$out/$stage"
      echo "image-build: stage $stage (from $image)"
      ;;
    WORKDIR) workdir="$rest"; mkdir -p "$(stage_path "$workdir")" ;;
    COPY) read -r -a words <<<"$rest"; do_copy "${words[@]}" ;;
    RUN) do_run "$rest" ;;
    ENV) do_env "$rest" ;;
    USER) user="$rest" ;;
    EXPOSE) expose="$rest" ;;
    VOLUME) volumes="$rest" ;;
    ENTRYPOINT) entrypoint="$rest" ;;
    *) die "Dockerfile instruction $keyword is not supported by this build; teach it to scripts/image-build.sh" ;;
  esac
done < <(instructions)

[ -n "$entrypoint" ] || die "the Dockerfile has no ENTRYPOINT"
env_json="{}"
for name in "${!stage_env[@]}"; do
  env_json="$(NAME="$name" VALUE="${stage_env[$name]}" ENV_JSON="$env_json" node -p 'JSON.stringify({ ...JSON.parse(process.env.ENV_JSON), [process.env.NAME]: process.env.VALUE })')"
done
STAGE="$stage" WORKDIR_PATH="$workdir" USER_SPEC="$user" ENV_JSON="$env_json" ENTRYPOINT_JSON="$entrypoint" EXPOSE="$expose" VOLUMES="$volumes" node -e '
  const e = process.env;
  const config = {
    stage: e.STAGE,
    root: e.STAGE,
    workdir: e.WORKDIR_PATH,
    user: e.USER_SPEC,
    env: JSON.parse(e.ENV_JSON),
    entrypoint: JSON.parse(e.ENTRYPOINT_JSON),
    expose: e.EXPOSE.split(/\s+/).filter(Boolean),
    volumes: JSON.parse(e.VOLUMES || "[]"),
  };
  process.stdout.write(JSON.stringify(config, null, 2) + "\n");
' >"$out/image.json"
echo "image-build: image filesystem in $out/$stage, configuration in $out/image.json"
