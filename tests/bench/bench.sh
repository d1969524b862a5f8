# The kgr benchmark in the lab guest (issue 5), run by /init with
# kgrlab_mode=bench. A real patching transition held up by the blocker
# kthread (and a reader in D state); N sleeping threads spread over
# processes; then, side by side in rounds, the wall time of:
#   a  the klp-style shell scan (/lab/bench/klp_scan.sh, cat per thread)
#   b  the plain single-threaded Rust procfs scan (bench-scan)
#   c  kgr blocking, as shipped (whatever path it picks)
#   cp kgr --no-ebpf blocking (when kgr has --no-ebpf)
#   s  kgr status
#   w  kgr blocking --why (when kgr has it)
#   d  the floor: bare passes of kgr's task iterator, loaded once
#      (`kgr bench-iterator`), and dload its load
#   cm kgr blocking while a `kgr monitor` runs (its pinned task iterator)
# and kgr -v blocking for kgr's own account of the path it took (the eBPF
# task snapshot's load and read times). Before that, the tracer's cost: a
# getppid loop (bench_getppid) with no kgr and with `kgr monitor` running,
# without a transition and during one. Prints "BENCH ..." lines that
# `cargo xtask bench` parses; never judges the times.
#
# Parameters (kernel command line): kgrlab_counts=1000,10000,50000
# kgrlab_repeat=5 kgrlab_calls=200000 (getppid calls per loop) kgrlab_abudget=60 (seconds of shell scan per count; at
# least one run unless a run is predicted to take over kgrlab_acap=300 s).
. /lab/lib.sh

COUNTS=$(echo "${kgrlab_counts:-1000,10000,50000}" | tr ',' ' ')
REPEAT=${kgrlab_repeat:-5}
ABUDGET=$((${kgrlab_abudget:-60} * 1000000000))
ACAP=$((${kgrlab_acap:-300} * 1000000000))
T=/tmp/bench
mkdir -p $T

bench() { echo "BENCH $*"; }

# Raise the limits that 50k threads hit: pid numbers, threads, mappings.
echo 4194304 >/proc/sys/kernel/pid_max
echo 1000000 >/proc/sys/kernel/threads-max
echo 1048576 >/proc/sys/vm/max_map_count

threads_now() { awk '{ split($4, a, "/"); print a[2] }' /proc/loadavg; }

bench "info kernel=$(uname -r) nproc=$(nproc) memkb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo) repeat=$REPEAT"

HAVE_NOEBPF=no
kgr --help 2>&1 | grep -q -- --no-ebpf && HAVE_NOEBPF=yes
HAVE_WHY=no
kgr blocking --help 2>&1 | grep -q -- --why && HAVE_WHY=yes
HAVE_ITER=no
kgr bench-iterator --help >/dev/null 2>&1 && HAVE_ITER=yes
HAVE_PIN=no
kgr monitor --help 2>&1 | grep -q -- --no-pin && HAVE_PIN=yes
bench "features no_ebpf=$HAVE_NOEBPF why=$HAVE_WHY iterator=$HAVE_ITER pin=$HAVE_PIN"
CALLS=${kgrlab_calls:-200000}

# A `kgr monitor` in the background, once it has pinned its task iterator
# (or, without pinning, once it said it follows); sets MP.
start_monitor() {
	kgr -v monitor >/dev/null 2>$T/monitor.err &
	MP=$!
	i=0
	until ls /sys/fs/bpf/kgr 2>/dev/null | grep -q -- "-$MP\$" || grep -q "following\|polling" $T/monitor.err; do
		[ $i -ge 150 ] && break
		sleep 0.2
		i=$((i + 1))
	done
}
stop_monitor() {
	kill -TERM $MP 2>/dev/null
	wait $MP 2>/dev/null
}

# The monitor's voluntary context switches (wakeups) and CPU ticks so far.
monitor_activity() {
	echo "$(awk '/^voluntary_ctxt_switches/ { print $2 }' /proc/$MP/status 2>/dev/null || echo 0) $(awk '{ print $14 + $15 }' /proc/$MP/stat 2>/dev/null || echo 0)"
}

# overhead PHASE: the getppid loop without and with a running monitor, in
# alternating rounds, in the steady state: the loop starts 6 s after the
# monitor pinned its iterator, and 3 s after the last monitor ended (the
# kernel's own work of attaching and detaching BPF trampolines is not the
# loop's; measured at 2 s it doubled the idle figure). With the monitor, its
# wakeups and CPU ticks during the loop are recorded too.
overhead() {
	r=1
	while [ $r -le $REPEAT ]; do
		sleep 3
		bench "overhead phase=$1 cond=none ns_per_call=$(bench_getppid $CALLS)"
		start_monitor
		sleep 6
		set -- "$1" $(monitor_activity)
		ns=$(bench_getppid $CALLS)
		set -- "$1" "$2" "$3" $(monitor_activity)
		bench "overhead phase=$1 cond=monitor ns_per_call=$ns wakeups=$(($4 - $2)) cpu_ticks=$(($5 - $3))"
		set -- "$1"
		stop_monitor
		r=$((r + 1))
	done
	bench "monitor phase=$1 $(tr '\n' ' ' <$T/monitor.err | head -c 300)"
}

overhead idle

# ------------------------------------------------ the blocked transition
insmod "$MODDIR/klp_blocker.ko" || { bench "error insmod klp_blocker failed"; exit 1; }
wait_for 5 sh -c '[ -n "$(. /lab/lib.sh; find_kthread klp_busy)" ]'
cat "$BLK/wait" >/dev/null &
sleep 1
insmod "$MODDIR/livepatch_test.ko" || { bench "error insmod livepatch_test failed"; exit 1; }
wait_for 10 sh -c '[ "$(cat /sys/kernel/livepatch/livepatch_test/transition)" = 1 ]'
sleep 3
if [ "$(rd $LP/$PATCH/transition)" != 1 ]; then
	bench "error no transition running after loading livepatch_test"
	exit 1
fi
bench "transition patch=$PATCH target=$(rd $LP/$PATCH/enabled) blocking=$(gt_blocking | tr '\n' ',')"
overhead transition

# one TOOL N: one timed run; prints "BENCH run ...", leaves stdout in $T/TOOL.out
one() {
	local tool=$1 at=$2 res
	shift 2
	res=$(bench_time "$T/$tool.out" "$@")
	set -- $res
	LAST_NS=$1
	bench "run n=$at tool=$tool ns=$1 rsskb=$2 rc=$3 lines=$(wc -l <"$T/$tool.out")"
	if [ "$3" != 0 ]; then
		bench "stderr n=$at tool=$tool $(head -c 200 "$T/$tool.out.err" | tr '\n' ' ')"
	fi
}

SPAWNED=0
A_LAST_NS=
A_LAST_N=
for n in $COUNTS; do
	delta=$((n - SPAWNED))
	if [ $delta -gt 0 ]; then
		t0=$(date +%s)
		bench_threads $delta >$T/threads.$n 2>&1 &
		i=0
		until grep -q ready $T/threads.$n; do
			if [ $i -ge 1200 ] || grep -q bench_threads $T/threads.$n; then
				bench "error spawning $delta threads: $(head -c 300 $T/threads.$n)"
				break 2
			fi
			sleep 0.5
			i=$((i + 1))
		done
		SPAWNED=$n
		bench "spawned n=$n threads=$(threads_now) secs=$(($(date +%s) - t0))"
	fi
	sleep 2
	bench "point n=$n threads=$(threads_now)"
	# Warm-up (dentries of /proc), not recorded.
	bench-scan >/dev/null 2>&1
	kgr blocking >/dev/null 2>&1
	# Will one shell scan fit the cap? Predicted from the last count, linearly.
	a_ok=yes
	if [ -n "$A_LAST_NS" ]; then
		pred=$((A_LAST_NS / A_LAST_N * n))
		if [ $pred -gt $ACAP ]; then
			a_ok=no
			bench "skip n=$n tool=a predicted_ns=$pred cap_ns=$ACAP"
		fi
	fi
	a_spent=0
	r=1
	while [ $r -le $REPEAT ]; do
		one b $n bench-scan
		one c $n kgr blocking
		[ $HAVE_NOEBPF = yes ] && one cp $n kgr --no-ebpf blocking
		one s $n kgr status
		[ $HAVE_WHY = yes ] && one w $n kgr blocking --why
		one cv $n kgr -v blocking
		while read -r line; do
			bench "note n=$n tool=cv $line"
		done <$T/cv.out.err
		if [ $a_ok = yes ] && { [ $r = 1 ] || [ $a_spent -lt $ABUDGET ]; }; then
			one a $n sh /lab/bench/klp_scan.sh
			a_spent=$((a_spent + LAST_NS))
			A_LAST_NS=$LAST_NS
			A_LAST_N=$n
			sort -n $T/a.out >$T/a.sorted
		fi
		# The answers must agree (same blocking threads).
		ok=yes
		cmp -s $T/b.out $T/c.out || ok="no: b and c differ"
		if [ -f $T/a.sorted ] && [ $r = 1 ]; then
			cmp -s $T/a.sorted $T/b.out || ok="no: a and b differ"
		fi
		bench "check n=$n round=$r agree=$ok blocking=$(tr '\n' ',' <$T/c.out)"
		r=$((r + 1))
	done
	if [ $HAVE_ITER = yes ]; then
		if kgr bench-iterator --repeat "$REPEAT" >$T/d.out 2>$T/d.err; then
			bench "run n=$n tool=dload ns=$(sed -n 's/^load_ns=//p' $T/d.out) rsskb=0 rc=0 lines=0"
			sed -n 's/^read_ns=\([0-9]*\) records=\([0-9]*\)$/\1 \2/p' $T/d.out | while read -r ns records; do
				bench "run n=$n tool=d ns=$ns rsskb=0 rc=0 lines=$records"
			done
		else
			bench "stderr n=$n tool=d $(head -c 200 $T/d.err | tr '\n' ' ')"
		fi
	fi
	if [ $HAVE_PIN = yes ]; then
		start_monitor
		sleep 1
		one cmv $n kgr -v blocking
		while read -r line; do
			bench "note n=$n tool=cmv $line"
		done <$T/cmv.out.err
		r=1
		while [ $r -le $REPEAT ]; do
			one cm $n kgr blocking
			ok=yes
			cmp -s $T/b.out $T/cm.out || ok="no: b and cm differ"
			bench "check n=$n round=cm$r agree=$ok blocking=$(tr '\n' ',' <$T/cm.out)"
			r=$((r + 1))
		done
		stop_monitor
	fi
	rm -f $T/a.sorted
done
bench "done threads=$(threads_now)"
