#!/bin/sh
# The klp-style scan of the kgr benchmark (issue 5, reference (a)): what
# SUSE's shell tools do to list the threads blocking a live patch
# transition. Finds the patch in transition and its target in sysfs, then
# loops over /proc/*/task/* reading each patch_state with cat, one fork per
# thread, and prints the tids whose state is neither -1 nor the target.
LP=${KLP_SYSFS:-/sys/kernel/livepatch}
PROC=${KLP_PROC:-/proc}
target=
for p in "$LP"/*; do
	[ "$(cat "$p/transition" 2>/dev/null)" = 1 ] || continue
	target=$(cat "$p/enabled")
done
[ -n "$target" ] || exit 0
for t in "$PROC"/[0-9]*/task/[0-9]*; do
	s=$(cat "$t/patch_state" 2>/dev/null) || continue
	if [ "$s" != -1 ] && [ "$s" != "$target" ]; then
		echo "${t##*/}"
	fi
done
