/* signals: the program of TestNativeSignals. A SIGUSR1 handler counts;
 * the program raises SIGUSR1 three times and prints the count. */
#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

int main(void)
{
	signal(SIGUSR1, on_usr1);
	for (int i = 0; i < 3; i++)
		raise(SIGUSR1);
	printf("handled %d\n", (int)handled);
	return 0;
}
