// SPDX-License-Identifier: GPL-2.0-only
/*
 * kgr bench: N sleeping threads spread over processes.
 *
 *   bench_threads N [PER_PROCESS]
 *
 * Forks ceil(N / PER_PROCESS) processes (default 500 threads each) whose
 * threads, main thread included, sleep in futex(FUTEX_WAIT) for good: not in
 * a patched function, so they switch at the kernel's next try and stay
 * asleep. Thread stacks are 16 KiB. Prints "ready N" once every thread
 * exists, then sleeps until killed; the children die with it
 * (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int never;

static void sleep_forever(void)
{
	for (;;)
		syscall(SYS_futex, &never, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static void *sleeper(void *unused)
{
	(void)unused;
	sleep_forever();
	return NULL;
}

/* A child with `n` threads in all; writes one byte to `fd` when they exist. */
static void child(long n, int fd, pid_t parent)
{
	pthread_attr_t attr;
	pthread_t t;
	long i;
	int err;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, "bench_sleeper");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 16384);
	for (i = 1; i < n; i++) {
		err = pthread_create(&t, &attr, sleeper, NULL);
		if (err) {
			fprintf(stderr, "bench_threads: thread %ld of %ld: %s\n", i, n, strerror(err));
			_exit(1);
		}
	}
	if (write(fd, "x", 1) != 1)
		_exit(1);
	close(fd);
	sleep_forever();
}

int main(int argc, char **argv)
{
	long n, per = 500, left, procs = 0, got = 0;
	int fds[2];
	char c;
	pid_t me = getpid();

	if (argc < 2 || argc > 3 || (n = atol(argv[1])) < 1 ||
	    (argc == 3 && (per = atol(argv[2])) < 1)) {
		fprintf(stderr, "usage: bench_threads N [PER_PROCESS]\n");
		return 2;
	}
	if (pipe(fds))
		return perror("pipe"), 1;
	for (left = n; left > 0; left -= per) {
		pid_t pid = fork();

		if (pid < 0)
			return perror("fork"), 1;
		if (pid == 0) {
			close(fds[0]);
			child(left < per ? left : per, fds[1], me);
		}
		procs++;
	}
	close(fds[1]);
	while (got < procs) {
		ssize_t r = read(fds[0], &c, 1);

		if (r == 1) {
			got++;
		} else if (r == 0 || errno != EINTR) {
			fprintf(stderr, "bench_threads: %ld of %ld processes ready\n", got, procs);
			return 1;
		}
	}
	printf("ready %ld threads in %ld processes\n", n, procs);
	fflush(stdout);
	for (;;)
		pause();
}
