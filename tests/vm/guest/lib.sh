# Shared helpers of the kgr lab guest scripts (busybox sh).
#
# Ground truth is read here from /proc and /sys, independently of kgr:
# the patch whose `transition` is 1 is in transition, its `enabled` is the
# target, and a thread blocks when its patch_state is neither -1 nor the
# target (shared/docs/livepatch.md).

MODDIR=/lab/modules
LP=/sys/kernel/livepatch
PATCH=livepatch_test
BLK=/proc/klp_blocker
PASS=0
FAIL=0

say() { echo "lab: $*"; }

pass() { PASS=$((PASS + 1)); echo "PASS $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1: $2"; }

# One line for a multi-line value in a message.
show() {
	if [ -z "$1" ]; then
		echo "(nothing)"
	else
		printf '%s\n' "$1" | awk 'NR > 1 { printf " | " } { printf "%s", $0 } END { print "" }'
	fi
}

# expect NAME EXPECTED GOT
expect() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$(show "$2")' got '$(show "$3")'"; fi
}

# kgr ARGS: sets OUT, RC, ERR (never hangs: 30 s at most).
kgr_run() {
	OUT=$(timeout 30 kgr "$@" 2>/tmp/kgr.err)
	RC=$?
	ERR=$(head -c 300 /tmp/kgr.err)
}

# kgr output as of the last kgr_run, for messages.
got() { echo "rc $RC, stdout '$(show "$OUT")', stderr '$(show "$ERR")'"; }

# expect_kgr NAME EXPECTED-RC EXPECTED-STDOUT (of the last kgr_run)
expect_kgr() {
	if [ "$RC" = "$2" ] && [ "$OUT" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "expected rc $2, stdout '$(show "$3")'; got $(got)"
	fi
}

# Values at JSON paths of $OUT (jsonck prints them, one per line); returns
# non-zero when $OUT is not one valid JSON document.
jget() { printf '%s\n' "$OUT" | jsonck "$@"; }

in_list() { printf '%s\n' "$1" | grep -qx "$2"; }

rd() { read -r v 2>/dev/null <"$1" || v=; echo "$v"; }

# The patch in transition (empty when none).
transition_patch() {
	for d in "$LP"/*; do
		[ -r "$d/transition" ] || continue
		read -r t <"$d/transition"
		if [ "$t" = 1 ]; then
			echo "${d##*/}"
			return
		fi
	done
}

# Ground truth: the blocking thread ids, ascending, one per line.
gt_blocking() {
	p=$(transition_patch)
	[ -n "$p" ] || return 0
	read -r target <"$LP/$p/enabled"
	for f in /proc/[0-9]*/task/[0-9]*/patch_state; do
		read -r s 2>/dev/null <"$f" || continue
		if [ "$s" != -1 ] && [ "$s" != "$target" ]; then
			t=${f%/patch_state}
			echo "${t##*/}"
		fi
	done | sort -n
}

count_lines() { if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l; fi; }

# kgr_gt ARGS: runs kgr ARGS between two ground-truth reads, again until
# both reads agree (threads still switching); sets GT and what kgr_run sets.
kgr_gt() {
	i=0
	while :; do
		GT=$(gt_blocking)
		kgr_run "$@"
		GT2=$(gt_blocking)
		[ "$GT" = "$GT2" ] && return 0
		i=$((i + 1))
		[ $i -ge 6 ] && return 0
		sleep 0.5
	done
}

# Fields of /proc/TID/stat after "(comm) ": state ppid pgrp session tty
# tpgid flags ...
stat_field() {
	n=$2
	read -r l 2>/dev/null <"/proc/$1/stat" || return 0
	l=${l##*") "}
	# shellcheck disable=SC2086
	set -- $l
	eval "echo \${$n}"
}
state_of() { stat_field "$1" 1; }
is_kthread() {
	f=$(stat_field "$1" 7)
	[ -n "$f" ] && [ $((f & 0x200000)) -ne 0 ]
}

# What `kgr -v blocking` shows for a thread: its cmdline (NULs as spaces,
# trailing NUL dropped), or [comm] for kernel threads and empty cmdlines.
cmdline_of() {
	c=
	is_kthread "$1" || c=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed 's/ $//')
	if [ -z "$c" ]; then
		c="[$(rd "/proc/$1/comm")]"
	fi
	echo "$c"
}

# Frames listed under thread TID in $OUT (`-vv blocking`).
frames_of() {
	printf '%s\n' "$OUT" | awk -v t="$1" '/^[^ ]/ { on = ($1 == t); next } on { print }'
}

# wait_for SECONDS COMMAND...: polls every 0.2 s; 0 when COMMAND succeeded.
wait_for() {
	n=$(($1 * 5))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.2
		n=$((n - 1))
	done
	"$@"
}

state_is() { [ "$(state_of "$1")" = "$2" ]; }
stack_has() { grep -q "$2" "/proc/$1/stack" 2>/dev/null; }
no_transition() { [ -z "$(transition_patch)" ]; }
not_blocking() { ! in_list "$(gt_blocking)" "$1"; }
file_has() { grep -q "$2" "$1" 2>/dev/null; }

find_kthread() {
	for d in /proc/[0-9]*; do
		if [ "$(rd "$d/comm")" = "$1" ] && is_kthread "${d#/proc/}"; then
			echo "${d#/proc/}"
			return
		fi
	done
}

# Thread id printed by lab_threads as "<what> <tid>" into FILE.
tid_from() { awk -v w="$2" '$1 == w { print $2 }' "$1"; }

finish() {
	echo "---- dmesg (tail) ----"
	dmesg | tail -n 40 | sed 's/^/dmesg: /'
	echo "$PASS passed, $FAIL failed"
}

# why_of TID FIELD: the `why.FIELD` of thread TID in $OUT
# (`kgr blocking --why --json`), by pairing the tids with the field values.
why_of() {
	jget '.threads[].tid' >/tmp/why.tids
	jget ".threads[].why.$2" >/tmp/why.vals
	awk -v t="$1" 'NR == FNR { tid[FNR] = $0; next } tid[FNR] == t { print }' /tmp/why.tids /tmp/why.vals
}

# Milliseconds since the epoch (busybox date may lack %N: then seconds).
now_ms() {
	n=$(date +%s%N 2>/dev/null)
	case "$n" in
	*N | "") echo $(($(date +%s) * 1000)) ;;
	*) echo $((n / 1000000)) ;;
	esac
}

# artifact NAME FILE: hands FILE to the host through the serial console
# (base64 lines between markers); the host writes it to
# target/vm-lab/artifacts/<kernel>/NAME.
artifact() {
	if [ -r "$2" ]; then
		echo "ARTIFACT-BEGIN $1"
		base64 <"$2"
		echo "ARTIFACT-END $1"
	else
		say "artifact $1: $2 is not readable"
	fi
}
