# The kgr lab demo: a real stuck live patch transition, diagnosed by kgr.
# The host prints what lies between "---- demo ----" and "---- end ----".
. /lab/lib.sh

say "guest up (kernel $(uname -r)); loading the blocker module and starting sleepers"
insmod "$MODDIR/klp_blocker.ko"
wait_for 5 sh -c '[ -n "$(. /lab/lib.sh; find_kthread klp_busy)" ]'
cat "$BLK/wait" >/dev/null &
lab_pause &
PA=$!
lab_threads pause >/tmp/mt.out &
wait_for 5 file_has /tmp/mt.out sleeper
sleep 1
say "loading the live patch livepatch_test"
insmod "$MODDIR/livepatch_test.ko"
sleep 2

cmd() {
	echo "\$ $*"
	"$@"
	echo
}

echo "---- demo ----"
echo "# The live patch livepatch_test was just loaded; its transition does not finish:"
cmd kgr status
echo "# Which threads hold it up (a kernel thread, a reader stuck in D state, pause() sleepers), with their kernel stacks:"
cmd kgr -vv blocking
echo "# poke: SIGSTOP+SIGCONT make sleeping user processes cross to user space; kernel threads and D-state tasks are skipped:"
cmd kgr poke -v
sleep 1
echo "# Left after the poke:"
cmd kgr -v blocking
echo "# The driver releases its sleepers (here: the blocker module's release file):"
echo "\$ echo 1 > $BLK/release"
echo 1 >"$BLK/release"
wait_for 15 no_transition
echo
echo "# The transition has finished:"
cmd kgr status
echo "---- end ----"
