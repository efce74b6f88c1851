#!/usr/bin/env bash
# `cortex` as a user meets it, on this machine's real apt index: dry runs, JSON, refusals, bad
# input, the model path in-process and through a real preload daemon, doctor, ask, and (as root)
# a real install, history and rollback of the tiny package `hello`.
set -uo pipefail
cortex="$1"; preload="$2"; model="$3"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap '"$preload" stop --socket "$tmp/d.sock" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
unset CORTEX_PROVIDER LLAMACPP_MODEL OLLAMA_MODEL OLLAMA_HOST CORTEX_PRELOAD CORTEX_PRELOAD_SOCKET XDG_RUNTIME_DIR
export CORTEX_HOME="$tmp/home" LLAMACPP_N_CTX=2048 LLAMACPP_N_THREADS=2
passes=0; fails=0
ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect STATUS PATTERN -- command...: exit status and a pattern in stdout+stderr
expect() {
    local want="$1" pattern="$2"; shift 3
    local out status
    out="$("$@" 2>&1 </dev/null)"; status=$?
    if [ "$status" != "$want" ]; then fail "$* exited $status, not $want: $out"; return; fi
    if ! grep -qE -- "$pattern" <<<"$out"; then fail "$*: no /$pattern/ in: $out"; return; fi
    ok
}
json_field() { $py -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

# Dry runs: the main job, typos, synonyms, JSON.
expect 0 "apt-get install .* nginx" -- "$cortex" install nginx --dry-run
expect 0 "dry run" -- "$cortex" install nginx
expect 0 "closest name" -- "$cortex" install ngnix --dry-run
expect 0 "docker.io" -- "$cortex" install docker --dry-run
expect 0 "Chosen by intent" -- "$cortex" install "a web server" --dry-run
expect 0 "python3-venv" -- "$cortex" install python dev tools --dry-run
out="$("$cortex" install nginx --json)" && [ "$(json_field "['plan']['packages']" <<<"$out")" = "['nginx']" ] && ok ||
    fail "install --json: $out"
# Already installed, bad requests, refusals.
expect 0 "Already installed: dpkg|dpkg +upgrade +[^ ]+ -> " -- "$cortex" install dpkg
expect 1 "No confident match" -- "$cortex" install qwzxvkjq
expect 1 "names nothing" -- "$cortex" install "please install the"
expect 1 "essential" -- "$cortex" remove bash
expect 1 "refused" -- "$cortex" remove libc6
expect 1 "error|No confident match" -- "$cortex" remove "nginx;reboot" --dry-run
expect 108 "excludes" -- "$cortex" install nginx --dry-run --execute
expect 1 "confirmation needed.*" -- "$cortex" install hello --execute
out="$("$cortex" install qwzxvkjq --json)"; [ "$(json_field "['no_confident_match']" <<<"$out")" = "True" ] && ok ||
    fail "no confident match as JSON: $out"
out="$("$cortex" install nginx=9.9.9 --json)"; [ "$(json_field "['error']['code']" <<<"$out")" = "not_found" ] && ok ||
    fail "error as JSON: $out"
# The rows of issue #15's table, as a new user types them (index only).
expect 0 "apt syntax" -- "$cortex" install nginx=$(apt-cache policy nginx | awk '/Candidate/ {print $2}') --dry-run --no-model
expect 1 "no release sid.*it has" -- "$cortex" install nginx/sid --dry-run
expect 0 "nginx/bookworm|nginx/oldstable" -- "$cortex" install nginx/$(/usr/bin/python3 -c "print('bookworm')") --dry-run --no-model
expect 1 "no such file: ./foo.deb" -- "$cortex" install ./foo.deb --dry-run
expect 1 "htopp: no such package; did you mean htop" -- "$cortex" install nginx htopp --dry-run
expect 0 "lighttpd" -- "$cortex" install lighttpd web server --dry-run --no-model
out="$("$cortex" install lighttpd web server --json --no-model)"; [ "$(json_field "['plan']['packages']" <<<"$out")" = "['lighttpd']" ] && ok || fail "lighttpd web server: $out"
out="$("$cortex" install "video editor like premiere" --json --no-model)"; [ "$(json_field "['plan']['packages']" <<<"$out")" = "['kdenlive']" ] && ok || fail "like premiere: $out"
out="$("$cortex" install "vector graphics editor like illustrator" --json --no-model)"; [ "$(json_field "['plan']['packages']" <<<"$out")" = "['inkscape']" ] && ok || fail "like illustrator: $out"
out="$("$cortex" install "tool to download youtube videos" --json --no-model)"; [ "$(json_field "['plan']['packages']" <<<"$out")" = "['yt-dlp']" ] && ok || fail "youtube: $out"
for product in chrome zoom vscode; do expect 1 "not in Debian's archive" -- "$cortex" install "$product" --dry-run; done
expect 0 "confidence medium" -- "$cortex" install "text editor for programmers" --no-model
# A guess is never executed: the user names the package to run it.
expect 1 "refused to execute: this plan was guessed" -- "$cortex" install ngnix --execute --yes --no-model
expect 1 "refused to execute" -- "$cortex" install "tool to download youtube videos" --execute --yes --no-model
# Upgrades: shown in the table with both versions; `cortex upgrade` plans them.
if apt-get -s upgrade 2>/dev/null | grep -q '^Inst systemd \['; then
    expect 0 "systemd +upgrade +[^ ]+ -> " -- "$cortex" install systemd --dry-run
fi
expect 0 "upgrade|up to date" -- "$cortex" upgrade --dry-run
expect 1 "not installed, so there is nothing to upgrade" -- "$cortex" upgrade sl --dry-run
# Bad input: empty, oversized, control bytes: a clear error, nothing executed.
expect 1 "names nothing" -- "$cortex" install "" --dry-run
expect 1 "at most 4096" -- "$cortex" install "$(head -c 100000 /dev/zero | tr '\0' a)" --dry-run
expect 1 "control characters" -- "$cortex" install "$(printf 'nginx\001\002')" --dry-run
expect 1 "is a path, but not to a .deb" -- "$cortex" install /etc/passwd --dry-run
# History and rollback of things that do not exist.
expect 0 "No executed plans" -- "$cortex" history
expect 1 "no history entry 42" -- "$cortex" history show 42
expect 1 "no history entry 42" -- "$cortex" rollback 42
expect 1 "positive" -- "$cortex" history --limit 0
# Doctor: JSON with every check.
out="$("$cortex" doctor --json)"; n="$(json_field "len(['checks'])" <<<"$out" 2>/dev/null || json_field "['checks'].__len__()" <<<"$out")"
[ "${n:-0}" -ge 6 ] && ok || fail "doctor --json: $out"

# The model path: a generated model (random weights) still gives a plan of real candidates.
export LLAMACPP_MODEL="$model"
out="$(CORTEX_PRELOAD=off "$cortex" install "a tool to watch network traffic" --json)"
chosen="$(json_field "['plan']['chosen_by']" <<<"$out")"
case "$chosen" in "model "*"(in-process)"|"package index") ok ;; *) fail "in-process model plan: $out" ;; esac
# While the model plans, a terminal shows a spinner with the time on stderr; a pipe gets none.
CORTEX_PRELOAD=off script -qec "'$cortex' install 'something to edit markdown with live preview' --dry-run 2>&1" /dev/null >"$tmp/tty.out" 2>&1
grep -q "planning with the model (" "$tmp/tty.out" && ok || fail "no spinner on a terminal: $(head -c 400 "$tmp/tty.out")"
CORTEX_PRELOAD=off "$cortex" install 'something to edit markdown with live preview' --dry-run >/dev/null 2>"$tmp/pipe.err"
grep -q "planning with the model" "$tmp/pipe.err" && fail "a spinner on a pipe: $(cat "$tmp/pipe.err")" || ok
expect 0 "." -- "$cortex" ask "How do I install nginx?" --max-tokens 8
expect 1 "empty|question" -- "$cortex" ask ""
# Ctrl-C ends a streaming answer cleanly: exit 130 and a message, no crash.
CORTEX_PRELOAD=off "$cortex" ask "hello there" --max-tokens 1500 >"$tmp/ask.out" 2>"$tmp/ask.err" &
ask_pid=$!
# Interrupt as soon as the answer streams: a fixed sleep raced a fast machine finishing all tokens.
for _ in $(seq 300); do [ -s "$tmp/ask.out" ] && break; sleep 0.1; done
kill -INT "$ask_pid"
wait "$ask_pid"; status=$?
[ "$status" = 130 ] && grep -q "cancelled" "$tmp/ask.err" && ok || fail "Ctrl-C during ask: exit $status: $(cat "$tmp/ask.err")"
# ... and through the preload daemon.
"$preload" start --socket "$tmp/d.sock" --model "$model" >/dev/null 2>&1 || fail "cortex-preload start"
export CORTEX_PRELOAD_SOCKET="$tmp/d.sock"
out="$(CORTEX_PRELOAD=required "$cortex" install "a tool to watch network traffic" --json)"
chosen="$(json_field "['plan']['chosen_by']" <<<"$out")"
case "$chosen" in "model "*"(daemon)"|"package index") ok ;; *) fail "daemon model plan: $out" ;; esac
expect 0 "daemon" -- "$cortex" doctor
"$preload" stop --socket "$tmp/d.sock" >/dev/null 2>&1
expect 1 "daemon|preload" -- env CORTEX_PRELOAD=required "$cortex" ask "hi" --max-tokens 4
unset LLAMACPP_MODEL CORTEX_PRELOAD_SOCKET

# A real install, history and rollback (root only: apt changes the system).
if [ "$(id -u)" = 0 ]; then
    apt-get remove -y -q hello >/dev/null 2>&1
    expect 0 "Done. Recorded as history entry 1" -- "$cortex" install hello --execute --yes
    dpkg-query -W -f='${Status}' hello 2>/dev/null | grep -q "install ok installed" && ok || fail "hello not installed"
    expect 0 "install hello" -- "$cortex" history
    expect 0 "\(none\) -> " -- "$cortex" history show 1
    expect 0 "remove .*hello" -- "$cortex" rollback 1 --dry-run
    expect 0 "Recorded as history entry 2" -- "$cortex" rollback 1 --yes
    dpkg-query -W -f='${Status}' hello 2>/dev/null | grep -q "install ok installed" && fail "hello still installed" || ok
    expect 1 "already rolled back" -- "$cortex" rollback 1 --yes
    out="$("$cortex" history --json)"; [ "$(json_field "[1]['rolled_back_by']" <<<"$out")" = "2" ] && ok || fail "history --json: $out"
    # An upgrade through `cortex upgrade`, recorded and rolled back like any plan: jq to the older
    # of two versions in the lists (libjq1 pinned along), then upgraded, then rolled back.
    jq_versions="$(apt-cache madison jq | awk '{print $3}')"
    if [ "$(wc -l <<<"$jq_versions")" -ge 2 ]; then
        older="$(tail -1 <<<"$jq_versions")"; newer="$(head -1 <<<"$jq_versions")"
        # (An earlier run on this machine may have left jq there already: then nothing to do.)
        if [ "$(dpkg-query -W -f='${Version}' jq 2>/dev/null)" != "$older" ]; then
            expect 0 "Recorded as history entry" -- "$cortex" install "jq=$older" --execute --yes
        fi
        [ "$(dpkg-query -W -f='${Version}' jq)" = "$older" ] && ok || fail "jq is not at $older"
        re() { sed 's/[.+~]/\\&/g' <<<"$1"; }
        expect 0 "jq +upgrade +$(re "$older") -> $(re "$newer")" -- "$cortex" upgrade jq --dry-run
        out="$("$cortex" upgrade jq --execute --yes --json)"; id="$(json_field "['history_id']" <<<"$out")"
        [ "$(dpkg-query -W -f='${Version}' jq)" = "$newer" ] && ok || fail "jq not upgraded: $out"
        expect 0 "Recorded as history entry" -- "$cortex" rollback "$id" --yes
        [ "$(dpkg-query -W -f='${Version}' jq)" = "$older" ] && ok || fail "rollback of the upgrade left jq at $(dpkg-query -W -f='${Version}' jq)"
    fi
    # Not root and no sudo: a clear error before anything runs.
    mkdir -p "$tmp/nobody" && chmod 777 "$tmp/nobody" && chmod 755 "$tmp"
    expect 1 "needs root.*sudo" -- runuser -u nobody -- env PATH=/usr/bin:/bin CORTEX_HOME="$tmp/nobody" "$cortex" install hello --execute --yes
else
    echo "skipped the real install: not root"
fi
echo "cortex cli: $passes passed, $fails failed"
exit $((fails > 0))
