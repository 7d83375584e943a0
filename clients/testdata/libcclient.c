/* libcclient: a native client linked with the C library (the host's,
 * bound by privload): it counts the threads with malloc'd per-thread
 * data and the instructions inline, and writes its report with
 * snprintf and write. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "reachvm.h"

static uint64_t count;
static int threads;
static char *greeting;

static void thread_start(struct rv_thread *t)
{
	long *d = malloc(sizeof *d);
	*d = t->tid;
	t->data = d;
	__atomic_fetch_add(&threads, 1, __ATOMIC_RELAXED);
}

static void thread_exit(struct rv_thread *t)
{
	long *d = t->data;
	if (*d != t->tid)
		abort();
	free(d);
}

static void block(struct rv_block *b)
{
	rv_insert_add(b, 0, &count, b->n, 1);
}

static void report(const struct rv_exit *e)
{
	char buf[256];
	int n = snprintf(buf, sizeof buf, "{\"client\":\"%s\",\"instructions\":%llu,\"threads\":%d}\n", greeting,
			 (unsigned long long)count, threads);
	write(e->fd, buf, (size_t)n);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argc;
	(void)argv;
	greeting = strdup("libc");
	c->block = block;
	c->thread_start = thread_start;
	c->thread_exit = thread_exit;
	c->exit = report;
	return 0;
}
