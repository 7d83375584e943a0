// popen: read a command's output through a pipe, then write to one; pclose
// returns each command's status.
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

int main(void) {
	FILE *f = popen("echo hello; echo world; exit 4", "r");
	if (!f)
		return 2;
	char line[128];
	while (fgets(line, sizeof line, f)) {
		for (char *p = line; *p; p++)
			*p = toupper((unsigned char)*p);
		printf("read: %s", line);
	}
	int st = pclose(f);
	printf("reader status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	fflush(stdout);

	f = popen("tr a-z A-Z; exit 2", "w");
	if (!f)
		return 2;
	fputs("written through popen\n", f);
	st = pclose(f);
	printf("writer status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}
