// SPDX-License-Identifier: GPL-2.0-only
/*
 * livepatch_test: the kgr lab's live patch.
 *
 * Replaces
 * - cmdline_proc_show (vmlinux): /proc/cmdline then reads a fixed line, so
 *   the guest can see the patch act;
 * - __x64_sys_pause (vmlinux): a process sleeping in pause() blocks the
 *   transition until it crosses to user space (poke, a signal, the kernel's
 *   fake signal);
 * - klp_busy_sleeper and klp_busy_user_wait (module klp_blocker): the new
 *   versions sleep on the same condition as the old ones, so the blocker's
 *   sleepers hold up both patching and unpatching.
 */

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/kthread.h>
#include <linux/wait.h>
#include <linux/atomic.h>
#include <linux/errno.h>
#include <linux/ptrace.h>

#include "klp_blocker.h"

static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "kgr-lab: livepatch_test is active\n");
	return 0;
}

/* pause(2): sleep until a signal (or the kernel's fake signal) arrives. */
static asmlinkage long livepatch_sys_pause(const struct pt_regs *regs)
{
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (signal_pending(current))
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	return -ERESTARTNOHAND;
}

static noinline void livepatch_busy_sleeper(void)
{
	wait_event_idle(klp_busy_wq, atomic_read(&klp_busy_released) ||
				     kthread_should_stop());
	atomic_inc(&klp_busy_calls);
}

static noinline int livepatch_busy_user_wait(void)
{
	int ret;

	ret = wait_event_killable(klp_busy_wq, atomic_read(&klp_busy_released));
	atomic_inc(&klp_busy_calls);
	return ret;
}

static struct klp_func vmlinux_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = livepatch_cmdline_proc_show,
	},
	{
		.old_name = "__x64_sys_pause",
		.new_func = livepatch_sys_pause,
	},
	{ }
};

static struct klp_func blocker_funcs[] = {
	{
		.old_name = "klp_busy_sleeper",
		.new_func = livepatch_busy_sleeper,
	},
	{
		.old_name = "klp_busy_user_wait",
		.new_func = livepatch_busy_user_wait,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		/* name NULL: vmlinux */
		.funcs = vmlinux_funcs,
	},
	{
		.name = "klp_blocker",
		.funcs = blocker_funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init livepatch_test_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit livepatch_test_exit(void)
{
}

module_init(livepatch_test_init);
module_exit(livepatch_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kgr lab: a live patch whose transition the blockers hold up");
MODULE_INFO(livepatch, "Y");
