/* pthreads: the C library's threads, for the threads tests. 8 threads
 * share a counter under a mutex, pass items through a queue guarded by a
 * mutex and two condition variables (producers and consumers), meet at a
 * barrier, keep a thread-local variable each, and are joined with their
 * results; a signal sent with pthread_kill is handled by the thread it
 * was sent to. Every line printed is the same natively and under
 * reachvm. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#define N 8
#define ITERS 20000
#define ITEMS 4000
#define QCAP 16

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notempty = PTHREAD_COND_INITIALIZER, notfull = PTHREAD_COND_INITIALIZER;
static long queue[QCAP];
static int qhead, qlen;
static long consumed_sum;

static pthread_barrier_t barrier;
static __thread long mine = -1;
static long tls_ok;

static void put(long v) {
	pthread_mutex_lock(&qmu);
	while (qlen == QCAP)
		pthread_cond_wait(&notfull, &qmu);
	queue[(qhead + qlen) % QCAP] = v;
	qlen++;
	pthread_cond_signal(&notempty);
	pthread_mutex_unlock(&qmu);
}

static long get(void) {
	pthread_mutex_lock(&qmu);
	while (qlen == 0)
		pthread_cond_wait(&notempty, &qmu);
	long v = queue[qhead];
	qhead = (qhead + 1) % QCAP;
	qlen--;
	pthread_cond_signal(&notfull);
	pthread_mutex_unlock(&qmu);
	return v;
}

static void *worker(void *arg) {
	long id = (long)arg;
	mine = id * 100;
	for (int i = 0; i < ITERS; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
	}
	/* Half produce, half consume. */
	long sum = 0;
	if (id % 2 == 0) {
		for (long i = 0; i < ITEMS; i++)
			put(id * ITEMS + i);
	} else {
		for (long i = 0; i < ITEMS; i++)
			sum += get();
		pthread_mutex_lock(&qmu);
		consumed_sum += sum;
		pthread_mutex_unlock(&qmu);
	}
	pthread_barrier_wait(&barrier);
	if (mine == id * 100) {
		pthread_mutex_lock(&mu);
		tls_ok++;
		pthread_mutex_unlock(&mu);
	}
	return (void *)(id * id);
}

/* pthread_kill: the handler notes the thread it ran on. */
static volatile pid_t handled_on;
static volatile int go;
static void on_usr1(int sig) {
	(void)sig;
	handled_on = syscall(SYS_gettid);
}
static void *target(void *arg) {
	pid_t *tid = arg;
	*tid = syscall(SYS_gettid);
	while (!go)
		usleep(1000);
	return NULL;
}

int main(void) {
	pthread_t th[N];
	pthread_barrier_init(&barrier, NULL, N);
	for (long i = 0; i < N; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
			puts("pthread_create failed");
			return 1;
		}
	long joined = 0;
	for (int i = 0; i < N; i++) {
		void *r;
		pthread_join(th[i], &r);
		joined += (long)r;
	}
	printf("counter %ld of %ld\n", counter, (long)N * ITERS);
	long want = 0;
	for (long id = 0; id < N; id += 2)
		for (long i = 0; i < ITEMS; i++)
			want += id * ITEMS + i;
	printf("consumed %ld, produced %ld\n", consumed_sum, want);
	printf("thread-local values kept: %ld of %d\n", tls_ok, N);
	printf("joined results %ld\n", joined);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	pthread_t t;
	pid_t tid = 0;
	pthread_create(&t, NULL, target, &tid);
	while (__atomic_load_n(&tid, __ATOMIC_SEQ_CST) == 0)
		usleep(1000);
	pthread_kill(t, SIGUSR1);
	for (int i = 0; i < 5000 && !handled_on; i++)
		usleep(1000);
	go = 1;
	pthread_join(t, NULL);
	printf("pthread_kill handled on its thread: %d\n", handled_on == tid);
	return 0;
}
