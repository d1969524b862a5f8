# The kgr lab scenarios: kgr's answers against ground truth at every phase
# of real live patch transitions. Prints PASS/FAIL lines, then
# "N passed, N failed" last.
. /lab/lib.sh

say "kernel $(uname -r)"

# ---------------------------------------------------------------- idle
if [ -z "$(ls "$LP" 2>/dev/null)" ]; then pass lab.idle.no_patch; else fail lab.idle.no_patch "expected no patch in $LP, got $(ls "$LP")"; fi
kgr_run status
expect_kgr idle.status 0 ready
kgr_run check
expect_kgr idle.check 0 ""
kgr_run patches
expect_kgr idle.patches 0 ""
kgr_run blocking
expect_kgr idle.blocking 0 ""
kgr_run -v blocking
expect_kgr idle.blocking_v 0 "no threads with klp_in_progress set"
kgr_run status --json
expect idle.status_json "0 ready null" "$RC $(jget .status .transition | tr '\n' ' ' | sed 's/ $//')"
kgr_run blocking --json
expect idle.blocking_json "0 null" "$RC $(jget .transition '.threads[]' | tr '\n' ' ' | sed 's/ $//')"

# ------------------------------------------------- blocked patching transition
insmod "$MODDIR/klp_blocker.ko" || fail lab.insmod_blocker "insmod failed"
KT=$(wait_for 5 find_kthread klp_busy >/dev/null; find_kthread klp_busy)
cat "$BLK/wait" >/dev/null &
RD=$!
lab_pause &
PA=$!
lab_pause &
PB=$!
lab_threads pause >/tmp/mt.out &
MT=$!
lab_threads read "$BLK/wait" >/tmp/st.out &
ST=$!
wait_for 5 file_has /tmp/mt.out sleeper
wait_for 5 file_has /tmp/st.out sleeper
MTS=$(tid_from /tmp/mt.out sleeper)
STS=$(tid_from /tmp/st.out sleeper)
wait_for 5 state_is "$RD" D
wait_for 5 state_is "$STS" D
wait_for 5 stack_has "$PB" pause
kill -STOP "$PB" "$ST"
wait_for 5 state_is "$PB" T
wait_for 5 state_is "$ST" T
say "blockers: kthread $KT, reader $RD, pause $PA, stopped pause $PB, threads $MT (sleeper $MTS), stopped reader $ST (sleeper $STS)"
expect lab.blockers_asleep "I D S T S T D" "$(state_of "$KT") $(state_of "$RD") $(state_of "$PA") $(state_of "$PB") $(state_of "$MTS") $(state_of "$ST") $(state_of "$STS")"

T0=$(date +%s)
insmod "$MODDIR/livepatch_test.ko" || fail lab.insmod_patch "insmod failed"
T_START=$(cut -d. -f1 /proc/uptime)
sleep 2
expect lab.blocked.transition "1 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
G=$(gt_blocking)
say "ground truth blocking: $(show "$G")"
missing=
for t in "$KT" "$RD" "$PA" "$MTS" "$STS"; do in_list "$G" "$t" || missing="$missing $t"; done
expect lab.blocked.blockers_block "" "$missing"
if in_list "$G" "$MT"; then fail lab.blocked.mt_leader_switched "expected leader $MT of lab_threads to have switched; ground truth: $(show "$G")"; else pass lab.blocked.mt_leader_switched; fi
if in_list "$G" "$PB"; then say "the stopped pause() sleeper $PB blocks"; else say "the stopped pause() sleeper $PB does not block (it was stopped outside pause, its stack has no patched function)"; fi

kgr_run status
expect_kgr blocked.status 0 in_progress
kgr_run check
expect_kgr blocked.check 1 ""
kgr_gt blocking
expect_kgr blocked.blocking 0 "$GT"
if in_list "$OUT" "$MTS" && ! in_list "$OUT" "$MT"; then
	pass blocked.blocking_non_leader_thread
else
	fail blocked.blocking_non_leader_thread "expected thread $MTS (not leader $MT) of lab_threads listed; got $(got)"
fi
kgr_gt blocking_threads
expect_kgr blocked.blocking_threads 0 "$GT"
kgr_gt -v blocking
EXPV=$(for t in $GT; do echo "$t $(cmdline_of "$t")"; done)
expect_kgr blocked.blocking_v 0 "$EXPV"
kgr_gt -vv blocking
HEADS=$(printf '%s\n' "$OUT" | grep -v '^    ')
BAD=$(printf '%s\n' "$OUT" | grep '^ ' | grep -v '^    [^ ]')
if [ "$RC" = 0 ] && [ "$HEADS" = "$EXPV" ] && [ -z "$BAD" ]; then
	pass blocked.blocking_vv_layout
else
	fail blocked.blocking_vv_layout "expected rc 0, thread lines '$(show "$EXPV")' each followed by 4-space-indented frames; got $(got)"
fi
FR=$(frames_of "$KT")
if printf '%s\n' "$FR" | grep -q klp_busy_sleeper; then pass blocked.blocking_vv_kthread_stack; else fail blocked.blocking_vv_kthread_stack "expected klp_busy_sleeper in the frames of $KT; got '$(show "$FR")'"; fi
FR=$(frames_of "$RD")
if printf '%s\n' "$FR" | grep -q klp_busy_user_wait; then pass blocked.blocking_vv_reader_stack; else fail blocked.blocking_vv_reader_stack "expected klp_busy_user_wait in the frames of $RD; got '$(show "$FR")'"; fi
FR=$(frames_of "$PA")
if printf '%s\n' "$FR" | grep -q sys_pause; then pass blocked.blocking_vv_pause_stack; else fail blocked.blocking_vv_pause_stack "expected *sys_pause in the frames of $PA; got '$(show "$FR")'"; fi

kgr_run patches
expect_kgr blocked.patches 0 "$PATCH"
kgr_run -v patches
expect_kgr blocked.patches_v 0 "$PATCH
    active: 1"
kgr_gt -v status
N=$(count_lines "$GT")
L1=$(printf '%s\n' "$OUT" | head -n 1)
if [ "$RC" = 0 ] && [ "$L1" = in_progress ] && in_list "$OUT" "patch: $PATCH" && in_list "$OUT" "target: patched" && in_list "$OUT" "threads left: $N"; then
	pass blocked.status_v
else
	fail blocked.status_v "expected in_progress, 'patch: $PATCH', 'target: patched', 'threads left: $N'; got $(got)"
fi
kgr_gt status --json
N=$(count_lines "$GT")
expect blocked.status_json "0 in_progress $PATCH patched $N" "$RC $(jget .status .transition.patch .transition.target .transition.threads_left | tr '\n' ' ' | sed 's/ $//')"
kgr_run check --json
expect blocked.check_json "1 in_progress" "$RC $(jget .status | tr '\n' ' ' | sed 's/ $//')"
kgr_gt blocking --json
J=$(jget '.threads[].tid')
JV=$?
expect blocked.blocking_json_valid "0 0" "$RC $JV"
expect blocked.blocking_json_tids "$GT" "$(printf '%s\n' "$J" | sort -n)"
expect blocked.blocking_json_target "patched" "$(jget .transition.target)"
expect blocked.blocking_json_patch_state "0" "$(jget '.threads[].patch_state' | sort -u)"
expect blocked.blocking_json_one_kthread "1" "$(jget '.threads[].kthread' | grep -c true)"
kgr_run patches --json
expect blocked.patches_json "0 $PATCH true true" "$RC $(jget '.patches[].name' '.patches[].enabled' '.patches[].transition' | tr '\n' ' ' | sed 's/ $//')"

# ---------------------------------------------------------------- poke
# The kernel's own fake signal (15 s after the start) would move the pause()
# sleepers by itself: poke must run well before it, or its check means nothing.
T_POKE=$(( $(cut -d. -f1 /proc/uptime) - T_START ))
say "poke runs ${T_POKE}s after the transition started (the kernel signals at ~15s)"
if [ "$T_POKE" -ge 13 ]; then fail lab.poke_in_time "poke ran ${T_POKE}s after the start: too close to the kernel's fake signal"; else pass lab.poke_in_time; fi
kgr_run poke -v
POKE=$OUT
expect blocked.poke_exit 0 "$RC"
ok=1
for p in "$PA" "$MT"; do in_list "$POKE" "sending $p STOP/CONT" || ok=0; done
in_list "$POKE" "skipping $KT (kernel thread)" || ok=0
in_list "$POKE" "skipping $RD (uninterruptible sleep)" || ok=0
printf '%s\n' "$POKE" | grep -q "^skipping $ST (" || ok=0
for p in "$PB" "$ST" "$RD" "$KT"; do printf '%s\n' "$POKE" | grep -q "^sending $p " && ok=0; done
if [ $ok = 1 ]; then pass poke.output_v; else fail poke.output_v "expected 'sending $PA/$MT STOP/CONT', 'skipping $KT (kernel thread)', 'skipping $RD (uninterruptible sleep)', 'skipping $ST (...)', nothing sent to $PB $ST $RD $KT; got $(got)"; fi
sleep 1
wait_for 3 not_blocking "$PA"
G=$(gt_blocking)
say "ground truth after poke: $(show "$G")"
if in_list "$G" "$PA"; then fail poke.sleeper_switched "expected pause() sleeper $PA no longer blocking; ground truth: $(show "$G")"; else pass poke.sleeper_switched; fi
if in_list "$G" "$MTS"; then fail poke.threads_switched "expected lab_threads sleeper $MTS no longer blocking; ground truth: $(show "$G")"; else pass poke.threads_switched; fi
expect poke.stopped_stay_stopped "T T" "$(state_of "$PB") $(state_of "$ST")"
if in_list "$G" "$STS"; then pass poke.stopped_reader_still_blocking; else fail poke.stopped_reader_still_blocking "expected $STS (stopped process, D thread) still blocking; ground truth: $(show "$G")"; fi
if in_list "$G" "$KT" && in_list "$G" "$RD"; then pass poke.kthread_reader_still_blocking; else fail poke.kthread_reader_still_blocking "expected $KT and $RD still blocking; ground truth: $(show "$G")"; fi
kgr_gt blocking
expect_kgr poke.blocking 0 "$GT"

# ---------------------------------------------------------------- release
echo 1 >"$BLK/release"
T1=$(date +%s)
if wait_for 15 no_transition; then pass "release.completes"; else fail release.completes "expected the transition to end within 15 s of the release; still blocking: $(show "$(gt_blocking)")"; fi
say "transition ended $(($(date +%s) - T1)) s after the release, $(($(date +%s) - T0)) s after insmod"
kill -9 "$PA" "$PB" "$MT" "$ST" 2>/dev/null
kill -CONT "$PB" "$ST" 2>/dev/null
expect lab.release.patched "1 0" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
expect lab.release.cmdline_patched "kgr-lab: livepatch_test is active" "$(cat /proc/cmdline)"
kgr_run status
expect_kgr release.status 0 ready
kgr_run check
expect_kgr release.check 0 ""
kgr_run blocking
expect_kgr release.blocking 0 ""
kgr_run -v blocking
expect_kgr release.blocking_v 0 "no threads with klp_in_progress set"
kgr_run patches
expect_kgr release.patches 0 "$PATCH"
kgr_run -v patches
expect_kgr release.patches_v 0 "$PATCH
    active: 1"
kgr_run status --json
expect release.status_json "0 ready null" "$RC $(jget .status .transition | tr '\n' ' ' | sed 's/ $//')"
wait

# ------------------------------------------------------------ reversal
# Sleepers in the new functions hold up the unpatching; sleepers started
# after it began (state 0) sleep in the old functions and hold up the
# reversed (patching again) transition.
echo 1 >"$BLK/arm"
cat "$BLK/wait" >/dev/null &
R2=$!
lab_pause &
A2=$!
wait_for 5 stack_has "$KT" livepatch_busy_sleeper
wait_for 5 stack_has "$R2" livepatch_busy_user_wait
wait_for 5 stack_has "$A2" livepatch_sys_pause
expect lab.reverse.new_functions "yes" "$(stack_has "$KT" livepatch_busy_sleeper && stack_has "$R2" livepatch_busy_user_wait && stack_has "$A2" livepatch_sys_pause && echo yes)"
echo 0 >"$LP/$PATCH/enabled"
sleep 2
expect lab.unpatch.transition "0 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
G=$(gt_blocking)
missing=
for t in "$KT" "$R2" "$A2"; do in_list "$G" "$t" || missing="$missing $t"; done
expect lab.unpatch.blockers_block "" "$missing"
kgr_run status
expect_kgr unpatch.status 0 in_progress
kgr_gt blocking
expect_kgr unpatch.blocking 0 "$GT"
kgr_run -v patches
expect_kgr unpatch.patches_v 0 "$PATCH
    active: 0"
kgr_gt status --json
expect unpatch.status_json "0 in_progress unpatched $(count_lines "$GT")" "$RC $(jget .status .transition.target .transition.threads_left | tr '\n' ' ' | sed 's/ $//')"
kgr_gt blocking --json
expect unpatch.blocking_json "0 unpatched 1 $(printf '%s' "$GT" | tr '\n' ' ')" "$RC $(jget .transition.target) $(jget '.threads[].patch_state' | sort -u | tr '\n' ' ')$(jget '.threads[].tid' | sort -n | tr '\n' ' ' | sed 's/ $//')"

cat "$BLK/wait" >/dev/null &
R3=$!
lab_pause &
A3=$!
wait_for 5 stack_has "$R3" klp_busy_user_wait
wait_for 5 stack_has "$A3" sys_pause
echo 1 >"$LP/$PATCH/enabled"
sleep 2
expect lab.reversed.transition "1 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
G=$(gt_blocking)
say "ground truth after the reversal: $(show "$G")"
ok=1
in_list "$G" "$R3" && in_list "$G" "$A3" || ok=0
for t in "$KT" "$R2" "$A2"; do in_list "$G" "$t" && ok=0; done
if [ $ok = 1 ]; then pass lab.reversed.blockers; else fail lab.reversed.blockers "expected $R3 $A3 blocking and not $KT $R2 $A2; ground truth: $(show "$G")"; fi
kgr_run status
expect_kgr reversed.status 0 in_progress
kgr_gt blocking
expect_kgr reversed.blocking 0 "$GT"
kgr_gt -v status
if in_list "$OUT" "target: patched" && in_list "$OUT" "threads left: $(count_lines "$GT")"; then pass reversed.status_v; else fail reversed.status_v "expected 'target: patched', 'threads left: $(count_lines "$GT")'; got $(got)"; fi
kgr_gt blocking --json
expect reversed.blocking_json "0 patched 0 $(printf '%s' "$GT" | tr '\n' ' ')" "$RC $(jget .transition.target) $(jget '.threads[].patch_state' | sort -u | tr '\n' ' ')$(jget '.threads[].tid' | sort -n | tr '\n' ' ' | sed 's/ $//')"
kill -9 "$A3" "$A2"
echo 1 >"$BLK/release"
if wait_for 15 no_transition; then pass reversed.completes; else fail reversed.completes "expected the reversed transition to end within 15 s; still blocking: $(show "$(gt_blocking)")"; fi
expect lab.reversed.patched "1 0" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
kgr_run status
expect_kgr reversed.status_after 0 ready
kgr_run blocking
expect_kgr reversed.blocking_after 0 ""
wait

# --------------------------------------------------- automatic fake signal
# Unpatching held up by one pause() sleeper only; nothing but the kernel's
# own fake signal (after ~15 s) moves it.
lab_pause &
A4=$!
wait_for 5 stack_has "$A4" livepatch_sys_pause
echo 0 >"$LP/$PATCH/enabled"
T2=$(date +%s)
sleep 1
G=$(gt_blocking)
if in_list "$G" "$A4"; then pass lab.fake_signal.sleeper_blocks; else fail lab.fake_signal.sleeper_blocks "expected $A4 blocking; ground truth: $(show "$G")"; fi
kgr_gt blocking
expect_kgr fake_signal.blocking 0 "$GT"
if wait_for 30 not_blocking "$A4"; then
	pass fake_signal.moves_sleeper
else
	fail fake_signal.moves_sleeper "expected $A4 to stop blocking within 30 s"
fi
say "pause() sleeper moved $(($(date +%s) - T2)) s after the unpatching started"
if dmesg | grep -q "signaling remaining tasks"; then pass lab.fake_signal.dmesg; else fail lab.fake_signal.dmesg "expected 'signaling remaining tasks' in dmesg"; fi
wait_for 5 no_transition
kgr_run status
expect_kgr fake_signal.status_after 0 ready
kgr_run blocking
expect_kgr fake_signal.blocking_after 0 ""
expect lab.unpatched.sysfs_gone "" "$(ls "$LP")"
kgr_run patches
expect_kgr unpatched.patches 0 ""
if rmmod livepatch_test; then pass lab.unpatched.rmmod; else fail lab.unpatched.rmmod "rmmod livepatch_test failed"; fi
kill -9 "$A4" 2>/dev/null

# ------------------------------------------------ blocking --why (issue 4)
# A fresh patching transition held up by the kthread, a D-state reader and
# a pause() sleeper (its own phase: the checks must run before the kernel's
# fake signal, ~15 s in, moves the sleeper). The kernel's own stack-check
# verdicts (fexit on klp_check_and_switch_task) name the function each
# blocker sleeps on; the syscall and pokeability come from procfs.
echo 1 >"$BLK/arm"
cat "$BLK/wait" >/dev/null &
RD=$!
lab_pause &
PA=$!
wait_for 5 stack_has "$KT" klp_busy_sleeper
wait_for 5 state_is "$RD" D
wait_for 5 stack_has "$PA" sys_pause
insmod "$MODDIR/livepatch_test.ko" || fail lab.why.insmod_patch "insmod failed"
sleep 1
expect lab.why.transition "1 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
W0=$(now_ms)
kgr_gt blocking --why --json
W1=$(now_ms)
say "blocking --why --json (eBPF): $((W1 - W0)) ms"
expect why.json_tids "$GT" "$(jget '.threads[].tid' | sort -n)"
expect why.kthread "klp_busy_sleeper sleeping_on_patched_function ebpf false" "$(why_of "$KT" function) $(why_of "$KT" reason) $(why_of "$KT" source) $(why_of "$KT" pokeable)"
expect why.d_reader "klp_busy_user_wait sleeping_on_patched_function ebpf false read" "$(why_of "$RD" function) $(why_of "$RD" reason) $(why_of "$RD" source) $(why_of "$RD" pokeable) $(why_of "$RD" syscall)"
expect why.pause_sleeper "pause true sleeping_on_patched_function ebpf" "$(why_of "$PA" syscall) $(why_of "$PA" pokeable) $(why_of "$PA" reason) $(why_of "$PA" source)"
say "why of the pause() sleeper $PA: function $(why_of "$PA" function), in kernel $(why_of "$PA" in_kernel_s) s"
expect why.stack_included "0" "$(jget '.threads[].stack' | grep -vc '^\[')"
W0=$(now_ms)
kgr_gt --no-ebpf blocking --why --json
W1=$(now_ms)
say "blocking --why --json (procfs): $((W1 - W0)) ms"
expect why.procfs_kthread "klp_busy_sleeper sleeping_on_patched_function procfs" "$(why_of "$KT" function) $(why_of "$KT" reason) $(why_of "$KT" source)"
expect why.procfs_d_reader "klp_busy_user_wait procfs" "$(why_of "$RD" function) $(why_of "$RD" source)"
expect why.procfs_pause_sleeper "pause true procfs" "$(why_of "$PA" syscall) $(why_of "$PA" pokeable) $(why_of "$PA" source)"
kgr_run -v blocking --why
say "blocking -v --why notes: $(show "$ERR")"
if [ "$RC" = 0 ] && printf '%s\n' "$OUT" | head -n 1 | grep -q '^ *TID  COMM'; then pass why.human_header; else fail why.human_header "expected a TID COMM ... header; got $(got)"; fi
if printf '%s\n' "$ERR" | grep -q "the kernel's verdicts for"; then pass why.v_note; else fail why.v_note "expected a -v note on the kernel's verdicts; got $(got)"; fi
kill -9 "$PA" 2>/dev/null
# Only the kthread and the D reader are left: the kernel's fake signal moves
# neither, so two runs see the same blockers.
wait_for 5 not_blocking "$PA"
for args in "blocking" "-v blocking" "-vv blocking"; do
	# shellcheck disable=SC2086
	kgr_gt $args
	A=$OUT
	# shellcheck disable=SC2086
	kgr_gt --no-ebpf $args
	expect "why.no_ebpf_same.$(echo "$args" | tr ' ' _)" "$A" "$OUT"
done
# The eBPF task snapshot (iter/task) forced at this small scale: -v says
# the snapshot was taken, and it answers the same as the procfs scan.
kgr_run --force-ebpf -v blocking
if printf '%s\n' "$ERR" | grep -q "eBPF task snapshot: "; then pass snapshot.taken; else fail snapshot.taken "expected the -v note 'eBPF task snapshot: ...'; got $(got)"; fi
for args in "blocking" "-v blocking" "-vv blocking" "--json blocking"; do
	# shellcheck disable=SC2086
	kgr_run --no-ebpf $args
	A=$OUT
	# shellcheck disable=SC2086
	kgr_run --force-ebpf $args
	expect "snapshot.same_as_procfs.$(echo "$args" | tr ' ' _)" "$A" "$OUT"
done

# The task iterator pinned by a running `kgr monitor` (issue 5): `blocking`
# reads it instead of loading a program (at any thread count), answers the
# same as procfs, and the pin goes with the monitor. A killed monitor's pin
# still answers, and the next monitor removes it.
pin_of() { ls /sys/fs/bpf/kgr 2>/dev/null | grep "^task_iter-v[0-9]*-$1\$"; }
has_pin() { [ -n "$(pin_of "$1")" ]; }
no_pin() { [ -z "$(pin_of "$1")" ]; }
kgr -v monitor >/tmp/pin-mon.out 2>/tmp/pin-mon.err &
PM=$!
if wait_for 20 has_pin "$PM"; then pass pinned.pinned; else fail pinned.pinned "no pin of monitor $PM in /sys/fs/bpf/kgr: $(ls /sys/fs/bpf/kgr 2>&1); notes: $(show "$(cat /tmp/pin-mon.err)")"; fi
kgr_run -v blocking
say "blocking -v with monitor $PM: $(show "$ERR")"
if printf '%s\n' "$ERR" | grep -q "iterator pinned by kgr monitor $PM)"; then pass pinned.used; else fail pinned.used "expected the -v note of the pinned iterator of $PM; got $(got)"; fi
for args in "blocking" "-v blocking" "-vv blocking" "--json blocking"; do
	# shellcheck disable=SC2086
	kgr_run --no-ebpf $args
	A=$OUT
	# shellcheck disable=SC2086
	kgr_run $args
	expect "pinned.same_as_procfs.$(echo "$args" | tr ' ' _)" "$A" "$OUT"
done
kill -TERM "$PM"
wait "$PM"
expect pinned.monitor_sigterm_exit 0 "$?"
if grep -q "interrupted" /tmp/pin-mon.out; then pass pinned.monitor_summary; else fail pinned.monitor_summary "expected a summary after SIGTERM; got $(show "$(tail -n 3 /tmp/pin-mon.out)")"; fi
if no_pin "$PM"; then pass pinned.removed; else fail pinned.removed "pin of $PM left after SIGTERM: $(pin_of "$PM")"; fi
kgr monitor >/dev/null 2>&1 &
PK=$!
wait_for 20 has_pin "$PK"
kill -9 "$PK"
wait "$PK" 2>/dev/null
kgr_run -v blocking
if has_pin "$PK" && printf '%s\n' "$ERR" | grep -q "iterator pinned by kgr monitor $PK)"; then pass pinned.stale_used; else fail pinned.stale_used "expected the killed monitor's pin to answer; pin '$(pin_of "$PK")', $(got)"; fi
kgr monitor >/dev/null 2>&1 &
PN=$!
wait_for 20 has_pin "$PN"
if no_pin "$PK"; then pass pinned.stale_removed; else fail pinned.stale_removed "the next monitor $PN left the pin of $PK: $(ls /sys/fs/bpf/kgr)"; fi
kill -TERM "$PN"
wait "$PN"

# An offline snapshot of this blocked transition (issue 6), with the live
# answers taken right after it: the host reads the snapshot back with
# `kgr --root` and must print the same (xtask's snapshot.host_same_* checks).
timeout 30 kgr -v snapshot -o /tmp/snap.tar.gz >/tmp/snap.log 2>&1
SRC=$?
timeout 30 kgr -vv blocking >/tmp/blocking-vv.out 2>/dev/null
timeout 30 kgr --json -vv blocking >/tmp/blocking-json-vv.out 2>/dev/null
say "snapshot: rc $SRC, $(wc -c </tmp/snap.tar.gz 2>/dev/null) bytes; $(show "$(tail -n 3 /tmp/snap.log)")"
expect snapshot.guest_written 0 "$SRC"
artifact snap.tar.gz /tmp/snap.tar.gz
artifact blocking-vv.out /tmp/blocking-vv.out
artifact blocking-json-vv.out /tmp/blocking-json-vv.out

echo 1 >"$BLK/release"
if wait_for 15 no_transition; then pass why.completes; else fail why.completes "expected the transition to end after the release; still blocking: $(show "$(gt_blocking)")"; fi
wait

# ------------------------------------------------------ monitor (issue 4)
# `monitor --once --json` follows the unpatching from the kernel's own klp
# functions (eBPF): the start, the threads switching and the completion.
# Nothing sleeps in the new functions now: the unpatching ends in ~1 s.
timeout 30 kgr -v monitor --once --timeout 20 --json >/tmp/mon.json 2>/tmp/mon.err &
MON=$!
wait_for 10 file_has /tmp/mon.json '"event":"monitoring"'
echo 0 >"$LP/$PATCH/enabled"
wait "$MON"
MRC=$?
say "monitor: $(grep -c . /tmp/mon.json) lines, summary $(tail -n 1 /tmp/mon.json); notes: $(show "$(cat /tmp/mon.err)")"
expect monitor.exit 0 "$MRC"
expect monitor.source "ebpf" "$(head -n 1 /tmp/mon.json | jsonck .source)"
expect monitor.start "1" "$(grep '"event":"start"' /tmp/mon.json | grep '"source":"ebpf"' | grep '"patch":"livepatch_test"' | grep '"target":"unpatched"' | grep -c '"already_running":false')"
expect monitor.complete "1" "$(grep '"event":"complete"' /tmp/mon.json | grep -c '"source":"ebpf"')"
SW=$(grep '"event":"switch"' /tmp/mon.json | grep '"source":"ebpf"' | sed 's/.*"tid":\([0-9]*\).*/\1/' | awk '$1 == 0 || !seen[$1]++' | wc -l)
# The idle tasks all have tid 0: each switches once, each counts.
if [ "$SW" -gt 0 ]; then pass monitor.switches; else fail monitor.switches "expected switch events; got $(show "$(head -c 600 /tmp/mon.json)")"; fi
expect monitor.summary "completed ebpf $SW 0" "$(tail -n 1 /tmp/mon.json | jsonck .outcome .source .threads_switched .reversals | tr '\n' ' ' | sed 's/ $//')"
wait_for 5 no_transition
if rmmod livepatch_test; then pass lab.monitor.rmmod; else fail lab.monitor.rmmod "rmmod livepatch_test failed"; fi

# ------------------------------------- a picture of the transition (issue 6)
# `monitor --once --report` across a patching transition held up by the
# kthread and a D-state reader until they are released a few seconds later;
# the SVG goes to the host, which rasterises it (xtask's report.* checks).
echo 1 >"$BLK/arm"
cat "$BLK/wait" >/dev/null &
RD=$!
wait_for 5 stack_has "$KT" klp_busy_sleeper
wait_for 5 state_is "$RD" D
rm -f /tmp/t.svg
timeout 60 kgr -v monitor --once --timeout 50 --report /tmp/t.svg >/tmp/rep.out 2>/tmp/rep.err &
MON=$!
wait_for 10 file_has /tmp/rep.out "following live patch transitions"
insmod "$MODDIR/livepatch_test.ko" || fail lab.report.insmod_patch "insmod failed"
sleep 5
G=$(gt_blocking)
missing=
for t in "$KT" "$RD"; do in_list "$G" "$t" || missing="$missing $t"; done
expect lab.report.blocked "" "$missing"
echo 1 >"$BLK/release"
wait "$MON"
MRC=$?
say "monitor --report: $(show "$(grep -v switched /tmp/rep.out)"); notes: $(show "$(cat /tmp/rep.err)")"
expect report.exit 0 "$MRC"
if head -c 200 /tmp/t.svg 2>/dev/null | grep -q "<svg"; then pass report.svg_written; else fail report.svg_written "expected an SVG in /tmp/t.svg; got '$(head -c 200 /tmp/t.svg 2>/dev/null)'"; fi
if grep -q "klp_busy_sleeper" /tmp/t.svg 2>/dev/null && grep -q "completion" /tmp/t.svg 2>/dev/null; then pass report.svg_labels; else fail report.svg_labels "expected the blocker's function klp_busy_sleeper and a completion marker in the SVG"; fi
artifact transition.svg /tmp/t.svg
wait_for 5 no_transition
wait

# ------------------------------- monitor: reversals and force (issue 4)
# `monitor --once --json` follows one transition through everything: a
# patching transition held up by the kthread (asleep in klp_busy_sleeper),
# reversed to unpatching (held up by a pause() sleeper in the patch's own
# livepatch_sys_pause), reversed again to patching (the kthread holds it
# again), then forced. Two reversals, so that what is forced is a patching
# transition: a forced patch's module can never be removed (the kernel no
# longer puts its reference), and a forced unpatching would leave the lab
# with an unpatched kernel and a stuck module. So this runs LAST: nothing
# after it may need to rmmod livepatch_test; new scenarios go above it.
if [ -d "$LP/$PATCH" ]; then
	echo 0 >"$LP/$PATCH/enabled"
	wait_for 10 no_transition
	rmmod livepatch_test || fail lab.force.rmmod_before "rmmod livepatch_test failed"
fi
echo 1 >"$BLK/arm"
wait_for 5 stack_has "$KT" klp_busy_sleeper
timeout 40 kgr -v monitor --once --timeout 30 --json >/tmp/force.json 2>/tmp/force.err &
MON=$!
wait_for 10 file_has /tmp/force.json '"event":"monitoring"'
insmod "$MODDIR/livepatch_test.ko" || fail lab.force.insmod_patch "insmod failed"
# Forked after this shell switched: it sleeps in the new function.
lab_pause &
A5=$!
wait_for 5 stack_has "$A5" livepatch_sys_pause
sleep 1
expect lab.force.patching_held "1 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
echo 0 >"$LP/$PATCH/enabled"
sleep 1
expect lab.force.unpatching_held "0 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
echo 1 >"$LP/$PATCH/enabled"
# A blocker sample (each second) after the second reversal.
sleep 2
expect lab.force.patching_again_held "1 1" "$(rd $LP/$PATCH/enabled) $(rd $LP/$PATCH/transition)"
echo 1 >"$LP/$PATCH/force"
wait "$MON"
MRC=$?
wait_for 5 no_transition
FS=$(tail -n 1 /tmp/force.json)
say "monitor (force): $(grep -c . /tmp/force.json) lines, summary $FS; notes: $(show "$(cat /tmp/force.err)")"
expect force.exit 0 "$MRC"
expect force.events "monitoring start reverse reverse force complete summary" "$(grep -v -e '"event":"switch"' -e '"event":"round"' /tmp/force.json | sed 's/^{"event":"\([a-z_]*\)".*/\1/' | tr '\n' ' ' | sed 's/ $//')"
expect force.start "1" "$(grep '"event":"start"' /tmp/force.json | grep '"source":"ebpf"' | grep '"target":"patched"' | grep -c '"already_running":false')"
expect force.reverse_targets "unpatched patched" "$(grep '"event":"reverse"' /tmp/force.json | sed 's/.*"target":"\([a-z]*\)".*/\1/' | tr '\n' ' ' | sed 's/ $//')"
expect force.summary "completed ebpf patched 2 true" "$(printf '%s\n' "$FS" | jsonck .outcome .source .target .reversals .forced | tr '\n' ' ' | sed 's/ $//')"
printf '%s\n' "$FS" | jsonck '.blockers[].tid' >/tmp/force.tids
printf '%s\n' "$FS" | jsonck '.blockers[].function' >/tmp/force.funcs
printf '%s\n' "$FS" | jsonck '.blockers[].reason' >/tmp/force.reasons
expect force.summary_blocker "klp_busy_sleeper sleeping_on_patched_function" "$(awk -v t="$KT" 'FILENAME == ARGV[1] { tid[FNR] = $0; next } FILENAME == ARGV[2] { if (tid[FNR] == t) f = $0; next } tid[FNR] == t { print f, $0 }' /tmp/force.tids /tmp/force.funcs /tmp/force.reasons)"
if [ "$(rd $LP/$PATCH/enabled)" = 1 ] && grep -q "kgr-lab: livepatch_test is active" /proc/cmdline; then pass lab.force.patched; else fail lab.force.patched "expected the forced patch enabled and active"; fi
kill -9 "$A5" 2>/dev/null
echo 1 >"$BLK/release"
wait

finish
