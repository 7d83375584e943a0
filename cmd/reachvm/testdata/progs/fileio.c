// fileio: stdio and system-call file I/O in the working directory (an
// empty directory of its own): write, append, seek, pread, mmap, stat,
// rename, truncate, list, unlink.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
	FILE *f = fopen("data.txt", "w");
	if (!f)
		return 2;
	for (int i = 0; i < 2000; i++)
		fprintf(f, "line %04d %s\n", i, i % 3 ? "abc" : "defghij");
	fclose(f);
	struct stat st;
	stat("data.txt", &st);
	printf("size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));

	int fd = open("data.txt", O_RDONLY);
	char buf[4096];
	unsigned long sum = 0, total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			sum = sum * 33 + (unsigned char)buf[i];
		total += n;
	}
	printf("read %lu bytes hash %lu\n", total, sum);
	n = pread(fd, buf, 20, 1000);
	printf("pread: %.*s|\n", (int)n - 1, buf);
	lseek(fd, -17, SEEK_END);
	n = read(fd, buf, sizeof buf);
	printf("tail: %.*s|\n", (int)n - 1, buf);
	char *m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 3;
	printf("mmap: %.14s, newlines %s\n", m + 15 * 100, memchr(m, '\n', st.st_size) ? "yes" : "no");
	munmap(m, st.st_size);
	close(fd);

	f = fopen("data.txt", "a+");
	fputs("appended\n", f);
	fseek(f, 0, SEEK_SET);
	fgets(buf, sizeof buf, f);
	printf("first line after append: %s", buf);
	fclose(f);
	rename("data.txt", "renamed.txt");
	truncate("renamed.txt", 100);
	mkdir("sub", 0755);
	int w = open("sub/new", O_CREAT | O_WRONLY | O_EXCL, 0600);
	dprintf(w, "%d\n", 12345);
	close(w);
	printf("O_EXCL again: %s\n", open("sub/new", O_CREAT | O_EXCL | O_WRONLY, 0600) < 0 ? "refused" : "allowed");

	DIR *d = opendir(".");
	char *names[16];
	int k = 0;
	struct dirent *e;
	while ((e = readdir(d)) && k < 16)
		if (e->d_name[0] != '.')
			names[k++] = strdup(e->d_name);
	closedir(d);
	qsort(names, k, sizeof names[0], cmp);
	for (int i = 0; i < k; i++) {
		stat(names[i], &st);
		printf("entry %s dir %d size %lld\n", names[i], S_ISDIR(st.st_mode), S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size);
	}
	unlink("sub/new");
	rmdir("sub");
	unlink("renamed.txt");
	printf("gone: %s\n", access("renamed.txt", F_OK) ? "yes" : "no");
	return 0;
}
