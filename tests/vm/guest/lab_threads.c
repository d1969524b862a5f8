// SPDX-License-Identifier: GPL-2.0-only
/*
 * kgr lab: a multi-threaded process in which exactly one non-leader thread
 * sleeps in the kernel while the leader and the other threads keep crossing
 * to user space (short sleeps), so they switch and it does not.
 *
 *   lab_threads pause        one thread sleeps in pause()
 *   lab_threads read FILE    one thread sleeps in read(FILE)
 *
 * Prints "leader <tid>" and "sleeper <tid>" on stdout (flushed), then runs
 * until killed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *read_path;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *what)
{
	pthread_mutex_lock(&out_lock);
	printf("%s %ld\n", what, (long)syscall(SYS_gettid));
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void *sleeper(void *unused)
{
	char buf[16];

	(void)unused;
	prctl(PR_SET_NAME, "lab_sleeper");
	say("sleeper");
	if (read_path) {
		int fd = open(read_path, O_RDONLY);

		if (fd < 0) {
			perror(read_path);
			exit(1);
		}
		for (;;)
			if (read(fd, buf, sizeof(buf)) <= 0)
				nap(100);
	}
	for (;;)
		pause();
	return NULL;
}

static void *napper(void *unused)
{
	(void)unused;
	prctl(PR_SET_NAME, "lab_napper");
	for (;;)
		nap(20);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int i;

	if (argc == 3 && !strcmp(argv[1], "read"))
		read_path = argv[2];
	else if (argc != 2 || strcmp(argv[1], "pause")) {
		fprintf(stderr, "usage: lab_threads pause | read FILE\n");
		return 2;
	}
	say("leader");
	if (pthread_create(&t, NULL, sleeper, NULL))
		return 1;
	for (i = 0; i < 2; i++)
		if (pthread_create(&t, NULL, napper, NULL))
			return 1;
	for (;;)
		nap(50);
}
