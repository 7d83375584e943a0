// threads: eight pthreads share a bounded queue (a mutex and two
// condition variables), meet at a barrier built of the same, each keeps
// a __thread sum, and main joins them all. The output does not depend on
// the schedule.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define WORKERS 8
#define ITEMS 20000
#define CAP 16

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notEmpty = PTHREAD_COND_INITIALIZER, notFull = PTHREAD_COND_INITIALIZER;
static long queue[CAP];
static int head, count;

static pthread_cond_t allHere = PTHREAD_COND_INITIALIZER;
static int arrived, generation;

static long total, items, threadSums;
static __thread long mine;

static void barrier(void) {
	pthread_mutex_lock(&mu);
	int gen = generation;
	if (++arrived == WORKERS) {
		arrived = 0;
		generation++;
		pthread_cond_broadcast(&allHere);
	} else {
		while (gen == generation)
			pthread_cond_wait(&allHere, &mu);
	}
	pthread_mutex_unlock(&mu);
}

static void *worker(void *arg) {
	long id = (long)arg, n = 0;
	barrier();
	for (;;) {
		pthread_mutex_lock(&mu);
		while (count == 0)
			pthread_cond_wait(&notEmpty, &mu);
		long v = queue[head];
		head = (head + 1) % CAP;
		count--;
		pthread_cond_signal(&notFull);
		pthread_mutex_unlock(&mu);
		if (v < 0)
			break;
		mine += v * v % 1000003;
		n++;
	}
	pthread_mutex_lock(&mu);
	total += mine;
	items += n;
	threadSums += id;
	pthread_mutex_unlock(&mu);
	barrier();
	return (void *)(id * 10);
}

int main(void) {
	pthread_t t[WORKERS];
	for (long i = 0; i < WORKERS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
			return 2;
	for (long v = 0; v < ITEMS + WORKERS; v++) {
		pthread_mutex_lock(&mu);
		while (count == CAP)
			pthread_cond_wait(&notFull, &mu);
		queue[(head + count) % CAP] = v < ITEMS ? v : -1;
		count++;
		pthread_cond_signal(&notEmpty);
		pthread_mutex_unlock(&mu);
	}
	long rets = 0;
	for (int i = 0; i < WORKERS; i++) {
		void *r;
		if (pthread_join(t[i], &r) != 0)
			return 3;
		rets += (long)r;
	}
	long want = 0;
	for (long v = 0; v < ITEMS; v++)
		want += v * v % 1000003;
	printf("threads %d items %ld total %ld (want %ld) ids %ld returns %ld main's own %ld\n", WORKERS, items, total, want, threadSums, rets, mine);
	return total != want;
}
