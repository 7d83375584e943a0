/* threads: the program of TestNativeEvents. Three threads besides the
 * first each call getpid and getppid; the first prints what they and it
 * saw, one line, and the sum of its arguments' lengths. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define N 3

static long pids[N + 1], ppids[N + 1];

static void *work(void *arg)
{
	long i = (long)arg;
	pids[i] = getpid();
	ppids[i] = getppid();
	return NULL;
}

int main(void)
{
	pthread_t t[N];
	long i;

	for (i = 0; i < N; i++)
		pthread_create(&t[i], NULL, work, (void *)(i + 1));
	for (i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	work((void *)0);
	for (i = 0; i <= N; i++)
		printf("%ld/%ld ", pids[i], ppids[i]);
	printf("\n");
	return 0;
}
