// SPDX-License-Identifier: GPL-2.0-only
/*
 * kgr bench: a syscall-heavy loop, to measure what a tracer costs it.
 *
 *   bench_getppid CALLS
 *
 * Makes CALLS getppid system calls (through syscall(2), never a cached
 * value) and prints "<ns per call>" with three decimals: CLOCK_MONOTONIC
 * around the whole loop, divided by CALLS.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec a, b;
	long calls, i;
	char *end;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_getppid CALLS\n");
		return 2;
	}
	calls = strtol(argv[1], &end, 10);
	if (*end || calls <= 0) {
		fprintf(stderr, "bench_getppid: CALLS must be a positive number, not %s\n", argv[1]);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < calls; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / calls);
	return 0;
}
