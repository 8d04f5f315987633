#!/usr/bin/env bash
# Every option and subcommand a program's --help lists (the subcommands'
# --help too) must be in its man page source, written as scdoc bold
# (*--option*, *-D*, *start*), and in its bash completion script.
# Usage: help_documented_test.sh PROGRAM MAN_PAGE.scd COMPLETION_SCRIPT
set -euo pipefail
program=$1 page=$2 completion=$3
name=$(basename "$program")
missing=()

# The options of one --help: the lines of its Options: section that begin
# with a dash, each token up to the first space ("-D,--directory TEXT").
options_of() {
  "$@" --help | awk '
    /^[A-Za-z].*:$/ { section = $0; next }
    section == "Options:" && $1 ~ /^-/ {
      n = split($1, names, ",")
      for (i = 1; i <= n; i++) print names[i]
    }'
}
subcommands_of() {
  "$@" --help | awk '/^[A-Za-z].*:$/ { section = $0; next } section == "Subcommands:" && NF { print $1 }'
}

check() {  # WHAT-IT-IS WORD
  local where=$1 word=$2
  grep -qF -- "*$word*" "$page" || missing+=("$where $word: not in $(basename "$page")")
  grep -qE -- "(^|[ \"'(|])$word([ \"')|]|\$)" "$completion" || missing+=("$where $word: not in the completion $(basename "$completion")")
}

count=0
for opt in $(options_of "$program"); do check "$name" "$opt"; count=$((count + 1)); done
for sub in $(subcommands_of "$program"); do
  check "$name" "$sub"
  for opt in $(options_of "$program" "$sub"); do check "$name $sub" "$opt"; count=$((count + 1)); done
done
# An empty --help would pass vacuously.
if [ "$count" -lt 3 ]; then echo "$name --help listed only $count options: is its output format unchanged?" >&2; exit 1; fi
if [ ${#missing[@]} -gt 0 ]; then printf '%s\n' "${missing[@]}" >&2; exit 1; fi
echo "$name: all $count options of --help are documented and completed"
