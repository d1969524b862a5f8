/* SPDX-License-Identifier: GPL-2.0-only */
/* What klp_blocker shares with livepatch_test. */
#ifndef KLP_BLOCKER_H
#define KLP_BLOCKER_H

#include <linux/wait.h>
#include <linux/atomic.h>

extern wait_queue_head_t klp_busy_wq;
extern atomic_t klp_busy_released;
extern atomic_t klp_busy_calls;

void klp_busy_sleeper(void);
int klp_busy_user_wait(void);

#endif
