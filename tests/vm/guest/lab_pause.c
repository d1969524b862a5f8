// SPDX-License-Identifier: GPL-2.0-only
/* kgr lab: a process that sleeps in pause() for ever (signals restart it). */
#include <unistd.h>

int main(void)
{
	for (;;)
		pause();
}
