// SPDX-License-Identifier: GPL-2.0-only
/*
 * klp_blocker: sleepers that keep a live patch transition from finishing,
 * for the kgr lab.
 *
 * - a kernel thread "klp_busy" that sleeps TASK_IDLE inside
 *   klp_busy_sleeper() (a fake signal does not wake it);
 * - /proc/klp_blocker/wait: a read sleeps killable (state D) inside
 *   klp_busy_user_wait();
 * - /proc/klp_blocker/release: any write wakes every sleeper and keeps them
 *   from sleeping again;
 * - /proc/klp_blocker/arm: any write lets them sleep again (the kthread goes
 *   back into klp_busy_sleeper()).
 *
 * The livepatch_test module replaces both sleep functions; its replacements
 * sleep on the same condition (klp_busy_wq / klp_busy_released, exported),
 * so the blockers also hold up an unpatching transition.
 */

#include <linux/module.h>
#include <linux/kthread.h>
#include <linux/proc_fs.h>
#include <linux/wait.h>
#include <linux/atomic.h>
#include <linux/sched.h>

#include "klp_blocker.h"

DECLARE_WAIT_QUEUE_HEAD(klp_busy_wq);
EXPORT_SYMBOL_GPL(klp_busy_wq);

/* 1 while released: sleepers return at once. */
atomic_t klp_busy_released = ATOMIC_INIT(0);
EXPORT_SYMBOL_GPL(klp_busy_released);

/* Counts calls, so that the sleep functions never end in a tail call. */
atomic_t klp_busy_calls = ATOMIC_INIT(0);
EXPORT_SYMBOL_GPL(klp_busy_calls);

static struct task_struct *klp_busy_task;
static struct proc_dir_entry *klp_blocker_dir;

/* The kthread sleeps here, uninterruptibly and without load, until released. */
noinline void klp_busy_sleeper(void)
{
	wait_event_idle(klp_busy_wq, atomic_read(&klp_busy_released) ||
				     kthread_should_stop());
	atomic_inc(&klp_busy_calls);
}
EXPORT_SYMBOL_GPL(klp_busy_sleeper);

/* A reader of /proc/klp_blocker/wait sleeps here (state D) until released. */
noinline int klp_busy_user_wait(void)
{
	int ret;

	ret = wait_event_killable(klp_busy_wq, atomic_read(&klp_busy_released));
	atomic_inc(&klp_busy_calls);
	return ret;
}
EXPORT_SYMBOL_GPL(klp_busy_user_wait);

static int klp_busy_thread(void *unused)
{
	while (!kthread_should_stop()) {
		klp_busy_sleeper();
		/* Released: wait outside any patched function until re-armed. */
		wait_event_idle(klp_busy_wq, !atomic_read(&klp_busy_released) ||
					     kthread_should_stop());
	}
	return 0;
}

static ssize_t wait_read(struct file *file, char __user *buf, size_t len,
			 loff_t *pos)
{
	int ret = klp_busy_user_wait();

	return ret ? ret : 0;
}

static ssize_t release_write(struct file *file, const char __user *buf,
			     size_t len, loff_t *pos)
{
	atomic_set(&klp_busy_released, 1);
	wake_up_all(&klp_busy_wq);
	return len;
}

static ssize_t arm_write(struct file *file, const char __user *buf,
			 size_t len, loff_t *pos)
{
	atomic_set(&klp_busy_released, 0);
	wake_up_all(&klp_busy_wq);
	return len;
}

static const struct proc_ops wait_ops = {
	.proc_read = wait_read,
	.proc_lseek = noop_llseek,
};

static const struct proc_ops release_ops = {
	.proc_write = release_write,
	.proc_lseek = noop_llseek,
};

static const struct proc_ops arm_ops = {
	.proc_write = arm_write,
	.proc_lseek = noop_llseek,
};

static int __init klp_blocker_init(void)
{
	klp_blocker_dir = proc_mkdir("klp_blocker", NULL);
	if (!klp_blocker_dir)
		return -ENOMEM;
	if (!proc_create("wait", 0444, klp_blocker_dir, &wait_ops) ||
	    !proc_create("release", 0200, klp_blocker_dir, &release_ops) ||
	    !proc_create("arm", 0200, klp_blocker_dir, &arm_ops)) {
		proc_remove(klp_blocker_dir);
		return -ENOMEM;
	}
	klp_busy_task = kthread_run(klp_busy_thread, NULL, "klp_busy");
	if (IS_ERR(klp_busy_task)) {
		proc_remove(klp_blocker_dir);
		return PTR_ERR(klp_busy_task);
	}
	return 0;
}

static void __exit klp_blocker_exit(void)
{
	atomic_set(&klp_busy_released, 1);
	wake_up_all(&klp_busy_wq);
	kthread_stop(klp_busy_task);
	proc_remove(klp_blocker_dir);
}

module_init(klp_blocker_init);
module_exit(klp_blocker_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kgr lab: sleepers that block a live patch transition");
