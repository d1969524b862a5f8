// SPDX-License-Identifier: GPL-2.0-only
/*
 * kgr bench: run a command once, stdout to OUT, and say how long it took.
 *
 *   bench_time OUT CMD [ARG]...
 *
 * Prints "<wall ns> <peak RSS KiB> <exit status>": wall time from just
 * before fork to the end of wait4 (CLOCK_MONOTONIC), ru_maxrss of the child.
 * Stderr of the command goes to OUT.err.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec a, b;
	struct rusage ru;
	char err[4096];
	int status, out, errfd;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_time OUT CMD [ARG]...\n");
		return 2;
	}
	snprintf(err, sizeof(err), "%s.err", argv[1]);
	out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	errfd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0 || errfd < 0)
		return perror(argv[1]), 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid = fork();
	if (pid < 0)
		return perror("fork"), 1;
	if (pid == 0) {
		dup2(out, 1);
		dup2(errfd, 2);
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return perror("wait4"), 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%lld %ld %d\n",
	       (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
	       ru.ru_maxrss,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}
