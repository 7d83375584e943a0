// robust: robust mutexes whose owner thread ends holding them: the next
// locker gets EOWNERDEAD when it locks after the owner ended, a waiter is
// woken by the owner's end and gets the mutex; each makes it consistent
// and goes on.
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu;
static sem_t locked;

static void *owner(void *arg) {
	(void)arg;
	pthread_mutex_lock(&mu);
	sem_post(&locked);
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	return NULL; // ends holding mu
}

static void *waiter(void *arg) {
	(void)arg;
	int r = pthread_mutex_lock(&mu);
	// Natively either: glibc's thread exit and the kernel's robust-list
	// walk race to mark the mutex; what matters is that the waiter is
	// woken and gets it.
	printf("waiter: %s\n", r == EOWNERDEAD || r == 0 ? "locked" : strerror(r));
	if (r == EOWNERDEAD)
		pthread_mutex_consistent(&mu);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(void) {
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&mu, &a);
	sem_init(&locked, 0, 0);

	pthread_t t, w;
	pthread_create(&t, NULL, owner, NULL);
	pthread_join(t, NULL);
	int r = pthread_mutex_lock(&mu);
	printf("after the owner ended: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
	if (r == EOWNERDEAD)
		pthread_mutex_consistent(&mu);
	printf("unlock: %d\n", pthread_mutex_unlock(&mu));
	printf("relock: %d\n", pthread_mutex_lock(&mu));
	pthread_mutex_unlock(&mu);

	pthread_create(&t, NULL, owner, NULL);
	sem_wait(&locked);
	pthread_create(&w, NULL, waiter, NULL);
	pthread_join(t, NULL);
	pthread_join(w, NULL);
	r = pthread_mutex_lock(&mu);
	printf("relock after the waiter: %s\n", r == EOWNERDEAD || r == 0 ? "locked" : strerror(r));
	return 0;
}
