/* allocs: a known set of allocations for the wrap client's test: 50
 * mallocs of 1000+i bytes, 20 callocs of 3 x (200+i), 10 reallocs of
 * those, every block freed but five mallocs of 7777 bytes (the leaks). */
#include <stdlib.h>

int main(void) {
	void *m[50], *c[20], *leak[5];
	for (int i = 0; i < 50; i++)
		m[i] = malloc(1000 + i);
	for (int i = 0; i < 20; i++)
		c[i] = calloc(3, 200 + i);
	for (int i = 0; i < 10; i++)
		c[i] = realloc(c[i], 5000 + i);
	for (int i = 0; i < 5; i++)
		leak[i] = malloc(7777);
	for (int i = 0; i < 50; i++)
		free(m[i]);
	for (int i = 0; i < 20; i++)
		free(c[i]);
	return leak[0] == 0;
}
