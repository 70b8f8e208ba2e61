#!/usr/bin/env bash
# How fast this engine removes 100 running containers, each way the
# connector could ask for it (issue 21: does removing in parallel batches
# beat one `docker rm -f`?). For each round and each way: start 100
# containers of the tests' image (8 `docker run -d` in flight, no stop
# grace), wait a second, then time the removal. Prints one line per
# measurement. Needs the tests' image (`docker-connector-test:2`, which the
# tests and the benchmark build); removes only the containers it labelled.
#
#   bench/remove-100.sh [ROUNDS]   # default 2
set -euo pipefail

rounds="${1:-2}"
image="docker-connector-test:2"
label="docker-connector.instance=remove-100-$$"

cleanup() {
  docker ps -aq --filter "label=$label" | xargs -r docker rm -f >/dev/null
}
trap cleanup EXIT

start_100() {
  seq 1 100 | xargs -P 8 -I{} docker run -d --label "$label" --stop-timeout 0 \
    "$image" sh -c 'trap "exit 0" TERM; sleep 86400 & wait' >/dev/null
  sleep 1
}

ids() { docker ps -aq --filter "label=$label"; }

# Prints the seconds `"$@"` took, with the ids of the 100 containers as its
# standard input.
timed() {
  local began ended
  began=$(date +%s.%N)
  ids | "$@" >/dev/null
  ended=$(date +%s.%N)
  echo "$ended - $began" | bc
}

for round in $(seq 1 "$rounds"); do
  for way in "one call" "4 calls of 25 side by side" "2 calls of 50 side by side" \
    "calls of 10 one after another" "docker kill, then docker rm"; do
    start_100
    case "$way" in
      "one call") took=$(timed xargs docker rm -f) ;;
      "4 calls of 25 side by side") took=$(timed xargs -P 4 -n 25 docker rm -f) ;;
      "2 calls of 50 side by side") took=$(timed xargs -P 2 -n 50 docker rm -f) ;;
      "calls of 10 one after another") took=$(timed xargs -P 1 -n 10 docker rm -f) ;;
      "docker kill, then docker rm")
        took=$(timed sh -c 'ids=$(cat); docker kill $ids >/dev/null; docker rm $ids')
        ;;
    esac
    echo "round $round, $way: ${took} s"
    cleanup
  done
done
